"""The voice-only reference (resemblyzer speaker embeddings -> ridge -> dlib face descriptor) and the intervals of
figures that sit on a bound (a share of 0 or 1, a density of 0, a forced-matching probability of 1 for every clip)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from evalkit.distributed import Shard
from evalkit.evalset import EvalSet, ImagePool, load_real_faces
from evalkit.features import FeatureCache, make_extractor
from evalkit.gallery import DEFAULT_GALLERY_DOMAIN, split_gallery
from evalkit.generators import voice_only
from evalkit.generators.base import GenerationJob
from evalkit.generators.voice_only import VOICE_ONLY, VoiceOnlySource
from evalkit.metrics import MetricContext
from evalkit.metrics.distribution import manifold_figures
from evalkit.options import EMBEDDED_DATA, EMBEDDED_GALLERY, HEAD_TRAIN_SPLITS, RunOptions
from evalkit.stats import (
    AT_BOUND,
    POISSON_ZERO_UPPER,
    Clusters,
    mean_figure,
    proportion_figure,
    seeded_rng,
    wilson_interval,
)
from generator.data.manifest import read_manifest
from tests.evalkit.oracles import SPLIT, OracleBench, make_bench
from tests.evalkit.support import embedded_face
from tests.evalkit.test_voice_face_metrics import covers, score


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> OracleBench:
    embedded_face()  # skips when the embedded set is absent
    pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    return make_bench(tmp_path_factory.mktemp("voice_only"))


def descriptor_context(options: RunOptions, predicted: np.ndarray, pool: ImagePool, real_features: dict,
                       identities: np.ndarray, paired: np.ndarray, split_index: dict, head_train: np.ndarray,
                       work: Path, split: str = SPLIT) -> MetricContext:
    """A metric context whose generated side is the predicted descriptors (no image: (N, 0, 0, 3))."""
    generated = ImagePool(np.zeros((len(predicted), 0, 0, 3), np.uint8), identities,
                          tuple(f"g/{k}" for k in range(len(predicted))))
    evalset = EvalSet((split,), generated, pool, {split: np.arange(len(predicted))}, dict(split_index),
                      {split: paired}, head_train, np.zeros(0, np.int64))
    return MetricContext(options, evalset, work, lambda name: ({"descriptor": predicted}, real_features))


def predict(options: RunOptions, manifest_path: Path, split: str, real_descriptors: np.ndarray | None = None
            ) -> tuple[VoiceOnlySource, np.ndarray, object, dict]:
    """Fit the voice-only map on the training splits of ``manifest_path`` and predict ``split``'s clips."""
    manifest = read_manifest(manifest_path)
    training = [p for p in manifest.pairs if p.split in HEAD_TRAIN_SPLITS]
    evaluated = [p for p in manifest.pairs if p.split == split]
    real = load_real_faces(manifest, (split,), 64)
    cache = FeatureCache(options.cache_dir)
    features = cache.features(make_extractor("dlib", options), real.pool.images)
    descriptors = features["descriptor"] if real_descriptors is None else real_descriptors
    source = VoiceOnlySource(64, training, real.paired(training), 1.0, "test")
    job = GenerationJob(evaluated, 0, 64, Shard(), real.reference(evaluated))
    return source, source.predict(job, cache, descriptors), real, features


def test_voice_only_row_on_the_embedded_data_reports_what_it_computes(bench):
    """Retrieval and forced matching of the predicted descriptors: the reported recall@1 is the share of clips whose
    true speaker has the best identity score (recomputed here), its interval covers it, and whether it beats the
    voice-blind chance is whatever the interval says (no threshold made up for the test)."""
    source, predicted, _, _ = predict(bench.options, bench.options.data, SPLIT)
    assert predicted.shape == (len(bench.paired), 128) and np.all(np.isfinite(predicted))
    assert source.fit["training_speakers"] == ["jaimealtozano", "javiermuniz"]
    assert source.fit["cv"].startswith("GroupKFold(5) by manifest group")  # 2 speakers: folds of whole groups
    assert source.info.provenance["fit"]["alpha"] in voice_only.ALPHAS
    ctx = descriptor_context(bench.options, predicted, bench.pool, bench.features, bench.identities, bench.paired,
                             bench.split_index, bench.head_train, bench.work)
    retrieval = score(ctx, "retrieval")[SPLIT]
    gallery = split_gallery(ctx, SPLIT)
    scores = gallery.identity_scores(predicted, bench.paired, ctx.options.gallery_score)
    recall = retrieval["recall@1"]
    assert recall["value"] == pytest.approx(float(np.mean(scores.argmax(axis=1) == gallery.index(bench.identities))))
    assert covers(recall, recall["value"])
    beats_chance = recall["ci95"][0] > recall["chance"]
    print(f"voice-only recall@1 {recall['value']:.3f} {recall['ci95']} chance {recall['chance']:.3f}: "
          f"{'beats' if beats_chance else 'does not beat'} chance")
    matching = score(ctx, "forced_matching")[SPLIT]["1:2"]
    assert 0.0 <= matching["ci95"][0] <= matching["value"] <= matching["ci95"][1] <= 1.0
    voice = score(ctx, "voice_dependence")[SPLIT]
    assert voice["icc"]["value"] > 0  # a map of speaker embeddings: its descriptors cluster by speaker


def grid_manifest(out: Path, training_speakers: int = 5) -> tuple[Path, list[str], list[str]]:
    """The embedded GRID clips with absolute paths: the first ``training_speakers`` speakers as ``seen`` (training),
    the others as ``unseen_identity``."""
    rows = list(csv.DictReader(EMBEDDED_GALLERY.open(newline="")))
    speakers = sorted({row["identity"] for row in rows})
    fitted, held_out = speakers[:training_speakers], speakers[training_speakers:]
    for row in rows:
        row.update(split="seen" if row["identity"] in fitted else "unseen_identity",
                   face=str(EMBEDDED_GALLERY.parent / row["face"]), audio=str(EMBEDDED_GALLERY.parent / row["audio"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out, fitted, held_out


def test_the_ridge_is_fitted_on_training_speakers_only(tmp_path, monkeypatch):
    """Held-out speakers' clips and faces never enter the fit: the fit sees the training clips alone (spied), holds
    out whole speakers in its cross-validation (5 training speakers), and replacing the held-out speakers' face
    descriptors by noise changes no prediction."""
    pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    manifest, fitted, held_out = grid_manifest(tmp_path / "grid" / "manifest.csv")
    options = RunOptions(data=manifest, cache_dir=tmp_path / "cache")
    seen: list[tuple] = []
    original = voice_only.fit_ridge

    def spy(embeddings, descriptors, speakers, groups):
        seen.append((np.array(embeddings), np.array(descriptors), np.array(speakers)))
        return original(embeddings, descriptors, speakers, groups)

    monkeypatch.setattr(voice_only, "fit_ridge", spy)
    source, predicted, real, features = predict(options, manifest, "unseen_identity")
    embeddings, _, speakers = seen[0]
    assert sorted(set(speakers.tolist())) == fitted and not set(speakers.tolist()) & set(held_out)
    assert len(embeddings) == len(source.training) == sum(p.identity in fitted for p in source.training)
    assert source.fit["cv"] == "GroupKFold(5) by speaker, mean squared error"
    held_out_faces = np.flatnonzero(np.isin(real.pool.identities, held_out))
    assert len(held_out_faces) and not np.isin(source.training_faces, held_out_faces).any()
    noisy = features["descriptor"].copy()
    noisy[held_out_faces] = np.random.default_rng(0).normal(size=(len(held_out_faces), noisy.shape[1]))
    _, again, _, _ = predict(options, manifest, "unseen_identity", noisy)
    np.testing.assert_array_equal(again, predicted)


def test_without_resemblyzer_the_row_is_unavailable_with_the_install_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_resemblyzer(name, *args, **kwargs):
        if name == "resemblyzer" or name.startswith("resemblyzer."):
            raise ImportError("No module named 'resemblyzer'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_resemblyzer)
    source = VoiceOnlySource(64, [], np.zeros(0, np.int64), None, "test")
    assert source.unavailable.startswith("resemblyzer is not installed")
    assert "--no-deps resemblyzer" in source.unavailable
    assert source.info.name == VOICE_ONLY and source.info.provenance["voice_encoder"] == {"unavailable":
                                                                                         source.unavailable}


def embedded_speech(indices: list[int]) -> np.ndarray:
    """1 s speech rows (float32 (len(indices), 16000)) of the embedded evaluation set's clips at ``indices``."""
    if not EMBEDDED_DATA.is_file():
        pytest.skip(f"embedded evaluation set not present ({EMBEDDED_DATA})")
    pairs = read_manifest(EMBEDDED_DATA).pairs
    return voice_only.speech_rows([pairs[i] for i in indices], 1.0)


UNTRIMMED_CLIP = 433  # the VAD finds no speech in it: embedded untrimmed


def test_batched_embeddings_equal_embed_utterance_on_real_clips(monkeypatch):
    """``VoiceEncoderFeatures.extract`` (partials of many clips per LSTM forward, mel spectrograms per padded length
    in one librosa call) gives resemblyzer's own ``embed_utterance`` of each clip to float32 rounding: on embedded
    clips (one the VAD leaves untrimmed) and on utterances of several real clips joined (5 and 3 partials, lengths
    that pad differently), with LSTM blocks of 2 partials (every block bounded) and clip batches of 4."""
    resemblyzer = pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    rows = embedded_speech([0, 1, 2, 3, 4, UNTRIMMED_CLIP, 500, 700])
    features = voice_only.VoiceEncoderFeatures()
    encoder = features.encoder()
    monkeypatch.setattr(features, "batch_size", 4)
    monkeypatch.setattr(voice_only, "MAX_PARTIALS", 2)
    forwarded: list[int] = []
    monkeypatch.setattr(encoder, "forward", lambda mels, original=encoder.forward: forwarded.append(len(mels))
                        or original(mels))
    batched = features.extract(rows)
    assert batched["untrimmed"].tolist() == [False] * 5 + [True, False, False]
    assert max(forwarded) == 2 and sum(forwarded) == len(rows)  # one partial per 1 s clip, blocks of at most 2
    expected = [encoder.embed_utterance(resemblyzer.normalize_volume(row, -30, increase_only=True) if untrimmed
                                        else resemblyzer.preprocess_wav(row))
                for row, untrimmed in zip(rows, batched["untrimmed"], strict=True)]
    voiced = [resemblyzer.preprocess_wav(row) for row in rows[:5]]
    joined = [np.concatenate(voiced), np.concatenate(voiced[:3]), voiced[0]]  # 5 partials, 3, 1
    assert [len(encoder.embed_utterance(w, return_partials=True)[1]) for w in joined] == [5, 3, 1]
    batched_joined = voice_only.embed_voiced(encoder, joined)
    expected += [encoder.embed_utterance(w) for w in joined]
    got = np.concatenate([batched["embedding"], batched_joined])
    assert got.dtype == np.float32 and got.shape == (len(rows) + 3, 256)
    np.testing.assert_allclose(got, np.array(expected), rtol=0, atol=2e-6)
    assert np.min(np.sum(got * np.array(expected), axis=1)) >= 0.99999


def test_mel_spectrograms_of_one_call_equal_those_of_each_wave_alone():
    """librosa on a (k, n) array frames each row alone (zero-padded STFT): the batched frames are the same bits."""
    resemblyzer = pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    waves = [resemblyzer.preprocess_wav(row) for row in embedded_speech([10, 11, 12])]
    partials, owners = voice_only.partial_mels(waves)
    assert partials.shape == (3, 160, 40) and owners.tolist() == [0, 1, 2]
    for wave, partial in zip(waves, partials, strict=True):
        alone = resemblyzer.wav_to_mel_spectrogram(np.pad(wave, (0, 25_600 - len(wave))))
        np.testing.assert_array_equal(partial, alone[:160])


NO_NETWORK_EMBEDDING = """
import socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network refused by the test")
socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = socket.create_connection = refuse
import numpy as np
from evalkit.generators.voice_only import VoiceEncoderFeatures
speech = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
embedding = VoiceEncoderFeatures().extract(speech)["embedding"]
assert embedding.shape == (2, 256) and np.allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-5)
print("connection attempts:", len(attempts))
"""


def test_the_voice_encoder_imports_loads_and_embeds_without_any_connection_attempt():
    """In a fresh interpreter (nothing imported yet) whose sockets refuse and count every connection or look-up:
    importing resemblyzer and librosa, loading the packaged weights and embedding speech attempt none."""
    pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", NO_NETWORK_EMBEDDING], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "connection attempts: 0" in done.stdout


def test_default_gallery_is_recorded_out_of_domain(bench):
    ctx = bench.context(bench.own_face(), gallery=EMBEDDED_GALLERY)
    retrieval = score(ctx, "retrieval")[SPLIT]
    assert retrieval["gallery"]["domain"] == DEFAULT_GALLERY_DOMAIN
    assert any("out of domain" in w for w in ctx.warnings)


# ---------------------------------------------------------------------------------------------------------------
# intervals at a bound
# ---------------------------------------------------------------------------------------------------------------

def groups(n: int, size: int) -> Clusters:
    return Clusters.joint([f"g{k // size}" for k in range(n)], by="group")[0]


def test_a_share_at_0_or_1_gets_wilson_over_its_clusters_not_a_zero_width_bootstrap():
    clusters = groups(40, 4)  # 10 clusters
    zero = proportion_figure(np.zeros(40, bool), None, clusters, 200, seeded_rng(0, "t"))
    assert zero["ci95"] == pytest.approx([0.0, wilson_interval(0, 10)[1]]) and zero["ci_method"] == AT_BOUND
    one = proportion_figure(np.ones(40, bool), None, clusters, 200, seeded_rng(0, "t"))
    assert one["ci95"] == pytest.approx([wilson_interval(10, 10)[0], 1.0])
    assert wilson_interval(10, 10)[0] < 1.0 and wilson_interval(0, 10)[1] > 0.0
    inside = proportion_figure(np.arange(40) % 3 == 0, None, clusters, 200, seeded_rng(0, "t"))
    assert inside["ci_method"].startswith("cluster bootstrap")  # away from the bound: unchanged
    independent = proportion_figure(np.zeros(40, bool), None)
    assert independent["ci95"] == pytest.approx(list(wilson_interval(0, 40)))


def test_a_bounded_mean_on_its_bound_gets_the_scaled_bound_interval():
    clusters = groups(30, 3)  # 10 clusters
    certain = mean_figure(np.ones(30), 0.5, clusters, 200, seeded_rng(0, "m"), bounds=(0.0, 1.0))
    assert certain["ci95"] == pytest.approx([wilson_interval(10, 10)[0], 1.0])
    first = mean_figure(np.ones(30), 3.0, clusters, 200, seeded_rng(0, "m"), bounds=(1.0, 5.0))  # mean rank 1 of 5
    assert first["ci95"] == pytest.approx([1.0, 1.0 + 4.0 * wilson_interval(0, 10)[1]])
    spread = mean_figure(np.linspace(0, 1, 30), None, clusters, 200, seeded_rng(0, "m"), bounds=(0.0, 1.0))
    assert spread["ci_method"].startswith("cluster bootstrap")


def manifold_context(x: np.ndarray, y: np.ndarray, group_size: int, tmp_path: Path) -> MetricContext:
    """A context with generated features x and real features y, clips and faces in groups of ``group_size`` (one
    group code space: group k holds clips and faces k * size ...)."""
    n, m = len(x), len(y)

    def labels(count: int) -> np.ndarray:
        return np.array([f"g{k // group_size}" for k in range(count)])

    evalset = EvalSet((SPLIT,), ImagePool(np.zeros((n, 0, 0, 3), np.uint8), np.array(["a"] * n), (), labels(n),
                                          "group"),
                      ImagePool(np.zeros((m, 0, 0, 3), np.uint8), np.array(["a"] * m), (), labels(m), "group"),
                      {SPLIT: np.arange(n)}, {SPLIT: np.arange(m)}, {SPLIT: np.arange(n) % m},
                      np.zeros(0, np.int64), np.zeros(0, np.int64))
    return MetricContext(RunOptions(bootstrap=50), evalset, tmp_path,
                         lambda name: ({"descriptor": x}, {"descriptor": y}))


def test_manifolds_at_a_bound_get_bound_intervals_not_recentred_half_samples(tmp_path):
    """Generated faces far from every real face: precision, recall, coverage and density are 0, and their intervals
    are the bound ones (before: half-samples, with larger k-NN radii, left the bound and the re-centred percentile
    gave precision 0 [0, 0.81]); identical sets: precision = recall = coverage = 1 with [W(C, C), 1]."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 8))
    far = manifold_context(real + 50.0, real, 4, tmp_path)  # 10 groups on each side
    cells = manifold_figures(far, "dlib", "descriptor", SPLIT)
    for name in ("precision", "recall", "coverage"):
        assert cells[name]["value"] == 0.0
        assert cells[name]["ci95"] == pytest.approx([0.0, wilson_interval(0, 10)[1]]), name
        assert cells[name]["ci_method"].startswith(AT_BOUND)
    assert cells["density"]["ci95"] == pytest.approx([0.0, POISSON_ZERO_UPPER / (3 * 10)])
    same = manifold_figures(manifold_context(real, real, 4, tmp_path), "dlib", "descriptor", SPLIT)
    for name in ("precision", "recall", "coverage"):
        assert same[name]["value"] == 1.0 and same[name]["ci95"] == pytest.approx([wilson_interval(10, 10)[0], 1.0])
    assert same["density"]["ci_method"].startswith("half-sampling")  # a positive density: no bound
    near = manifold_figures(manifold_context(real + rng.normal(0, 0.8, real.shape), real, 4, tmp_path), "dlib",
                            "descriptor", SPLIT)
    inside = [n for n in ("precision", "recall", "coverage") if 0 < near[n]["value"] < 1]
    assert inside and all(near[n]["ci_method"].startswith("half-sampling") for n in inside)
    assert all(near[n]["ci95"][0] <= near[n]["value"] <= near[n]["ci95"][1] for n in inside)


def test_prefetched_embeddings_are_read_by_predict_and_give_the_same_prediction(tmp_path, monkeypatch):
    """``prefetch`` (run by the harness in a background thread while other references are scored) puts the training
    and evaluated clips' embeddings in the cache: ``predict`` then extracts nothing and predicts the same."""
    pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    manifest_path, _, _ = grid_manifest(tmp_path / "grid" / "manifest.csv")
    options = RunOptions(data=manifest_path, cache_dir=tmp_path / "cache")
    _, expected, _, _ = predict(options, manifest_path, "unseen_identity")
    options = RunOptions(data=manifest_path, cache_dir=tmp_path / "cache2")
    manifest = read_manifest(manifest_path)
    training = [p for p in manifest.pairs if p.split in HEAD_TRAIN_SPLITS]
    evaluated = [p for p in manifest.pairs if p.split == "unseen_identity"]
    real = load_real_faces(manifest, ("unseen_identity",), 64)
    source = VoiceOnlySource(64, training, real.paired(training), 1.0, "test")
    cache = FeatureCache(options.cache_dir)
    with ThreadPoolExecutor(1) as background:
        background.submit(source.prefetch, evaluated, cache).result()
    assert source.encoder is not None and source.encoder.threads is None  # the thread setting is handed back
    monkeypatch.setattr(voice_only.VoiceEncoderFeatures, "extract", lambda *a: pytest.fail("embedded again"))
    descriptors = cache.features(make_extractor("dlib", options), real.pool.images)["descriptor"]
    predicted = source.predict(GenerationJob(evaluated, 0, 64, Shard(), real.reference(evaluated)), cache, descriptors)
    np.testing.assert_allclose(predicted, expected, atol=1e-6)


def test_speech_is_decoded_and_cached_a_block_of_clips_at_a_time(tmp_path, monkeypatch):
    """``embeddings`` decodes at most ``SPEECH_BLOCK`` clips at once (memory flat in the number of clips), caches one
    entry per block, and gives what one pass over every clip gives; a second call decodes but embeds nothing."""
    pytest.importorskip("resemblyzer", reason="install with: " + voice_only.INSTALL)
    manifest_path, _, _ = grid_manifest(tmp_path / "grid" / "manifest.csv")
    pairs = read_manifest(manifest_path).pairs
    source = VoiceOnlySource(64, pairs, np.arange(len(pairs)), 1.0, "test")
    assert source.encoder is not None
    whole = source.encoder.extract(voice_only.speech_rows(pairs, 1.0))
    monkeypatch.setattr(voice_only, "SPEECH_BLOCK", 3)
    decoded: list[int] = []
    monkeypatch.setattr(voice_only, "speech_rows", lambda block, seconds, original=voice_only.speech_rows:
                        decoded.append(len(block)) or original(block, seconds))
    blocked = source.embeddings(pairs, FeatureCache(tmp_path / "cache"))
    assert len(pairs) > 3 and decoded == [3] * (len(pairs) // 3) + ([len(pairs) % 3] if len(pairs) % 3 else [])
    np.testing.assert_allclose(blocked["embedding"], whole["embedding"], rtol=0, atol=2e-6)
    np.testing.assert_array_equal(blocked["untrimmed"], whole["untrimmed"])
    assert len(list((tmp_path / "cache").glob("*/*.npz"))) == len(decoded)
    monkeypatch.setattr(voice_only.VoiceEncoderFeatures, "extract", lambda *a: pytest.fail("embedded again"))
    again = source.embeddings(pairs, FeatureCache(tmp_path / "cache"))
    np.testing.assert_array_equal(again["embedding"], blocked["embedding"])
