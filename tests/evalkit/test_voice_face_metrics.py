"""The voice→face metrics on oracle generators over a slice of the embedded set (real dlib features, the embedded GRID
gallery): retrieval, forced matching, voice dependence, face k-NN manifolds, Vendi, memorization, craniofacial."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from evalkit.errors import EvalError
from evalkit.evalset import EvalSet, ImagePool
from evalkit.features.dlib_faces import DlibFaceExtractor
from evalkit.gallery import NO_FACE, split_gallery
from evalkit.metrics import MetricContext, resolve_metrics
from evalkit.metrics.voice_dependence import _grouped, _mean_gap, permutation_units
from evalkit.options import RunOptions
from evalkit.runner import Plan, evaluate_metric, validate
from tests.evalkit.oracles import SPLIT, OracleBench, make_bench
from tests.evalkit.support import embedded_face

NEW_METRICS = ("retrieval", "forced_matching", "voice_dependence", "face_prdc", "vendi", "memorization", "craniofacial")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> OracleBench:
    embedded_face()  # skips when the embedded set is absent
    return make_bench(tmp_path_factory.mktemp("oracles"))


def score(ctx: MetricContext, name: str) -> dict:
    metric = resolve_metrics((name,))[0]
    entry = evaluate_metric(metric, ctx, Plan([metric], {}, {}))
    assert entry["status"] == "ok"
    return entry["rows"]


def covers(cell: dict, value: float) -> bool:
    return cell["ci95"][0] - 1e-12 <= value <= cell["ci95"][1] + 1e-12


def test_nearest_face_oracle_retrieves_and_matches_the_speaker(bench):
    ctx = bench.context(bench.nearest_training_face())
    retrieval = score(ctx, "retrieval")[SPLIT]
    assert retrieval["recall@1"]["value"] >= 0.9
    assert retrieval["recall@1"]["value"] > retrieval["recall@1"]["ci95"][0] > retrieval["recall@1"]["chance"]
    gallery = retrieval["gallery"]
    assert gallery["identities"] == 10 and len(gallery["distractors"]) == 8 and gallery["faces_per_identity"] == 5
    assert retrieval["recall@1"]["chance_uniform"] == pytest.approx(0.1)
    assert gallery["omitted"] == ["recall@10"]  # K = N is trivially 1
    matching = score(ctx, "forced_matching")[SPLIT]
    assert matching["1:2"]["value"] >= 0.95 and matching["1:2"]["chance_uniform"] == 0.5
    assert matching["1:N"]["n_way"] == 5 and matching["1:N"]["chance_uniform"] == pytest.approx(0.2)
    assert all(matching["impostors"]["gender_matched"].values())  # both speakers are documented male


def test_constant_generator_sits_at_chance(bench):
    ctx = bench.context(bench.constant())
    retrieval = score(ctx, "retrieval")[SPLIT]
    for name in ("recall@1", "recall@2", "recall@5", "mean_rank"):
        assert covers(retrieval[name], retrieval[name]["chance"]), name
    matching = score(ctx, "forced_matching")[SPLIT]
    for name in ("1:2", "1:N"):
        assert covers(matching[name], matching[name]["chance"]), name
    voice = score(ctx, "voice_dependence")[SPLIT]
    assert voice["icc"]["value"] == 0.0 and voice["p_value"]["value"] == 1.0
    assert voice["speaker_gap"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert score(ctx, "vendi")[SPLIT]["vendi"]["value"] == pytest.approx(1.0)
    cranio = score(ctx, "craniofacial")[SPLIT]
    assert all(ratio["r"]["status"] == "not applicable" for ratio in cranio["ratios"].values())
    assert cranio["mean_r"]["status"] == cranio["mean_r_within_speaker"]["status"] == "not applicable"


def test_identity_lookup_depends_on_the_voice(bench):
    ctx = bench.context(bench.identity_lookup(), permutations=999)
    voice = score(ctx, "voice_dependence")[SPLIT]
    assert voice["icc"]["value"] == pytest.approx(1.0)
    assert voice["p_value"]["value"] < 0.01
    assert voice["within_speaker_cosine"]["value"] > voice["within_speaker_cosine"]["chance"]
    cranio = score(ctx, "craniofacial")[SPLIT]  # one face per speaker: no agreement beyond the speaker's identity
    assert cranio["mean_r_within_speaker"]["status"] == "not applicable" and "value" in cranio["mean_r"]


def test_shuffled_speakers_show_no_voice_dependence(bench):
    voice = score(bench.context(bench.shuffled()), "voice_dependence")[SPLIT]
    assert abs(voice["icc"]["value"]) < 0.05 and voice["icc"]["ci95"][0] <= 0
    assert voice["p_value"]["value"] >= 0.05
    assert covers(voice["speaker_gap"], 0.0)
    ctx = bench.context(bench.shuffled())
    real = score(ctx, "voice_dependence")["real"]
    assert real["icc"]["value"] > 0.5 and real["speaker_gap"]["ci95"][0] > 0  # real faces do depend on the person
    # the real faces come in a few groups (recordings): labels are permuted over whole groups, so the p-value is the
    # share of the few distinct group labellings that reach the observed gap (enumerated here), not a clip-level 0.001
    faces = np.unique(ctx.evalset.real_index[SPLIT])
    u, labels, rows, _, _ = _grouped(bench.features["descriptor"][faces], bench.pool.identities[faces])
    units, test = permutation_units(labels, ctx.real_clusters(faces).subset(rows).codes)
    assert units is not None and real["p_value"]["test"] == test
    unit_labels = labels[np.unique(units, return_index=True)[1]]
    observed = _mean_gap(u, labels, 2)
    labellings = [np.isin(np.arange(len(unit_labels)), chosen).astype(np.int64)[units]
                  for chosen in itertools.combinations(range(len(unit_labels)), int(unit_labels.sum()))]
    exact = np.mean([_mean_gap(u, labelling, 2) >= observed - 1e-9 for labelling in labellings])
    low, high = real["p_value"]["ci95"]
    assert low - 1 / 200 <= exact <= high + 1 / 200, (exact, real["p_value"])


def test_craniofacial_agreement_of_a_face_with_itself_and_a_shuffled_pairing(bench):
    cranio = score(bench.context(bench.own_face()), "craniofacial")[SPLIT]
    assert cranio["with_landmarks"] >= 0.9 * cranio["clips"]
    for name, ratio in cranio["ratios"].items():
        assert ratio["r"]["value"] == pytest.approx(1.0), name
        assert ratio["bias"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert cranio["mean_r"]["value"] == pytest.approx(1.0) and cranio["ratio_error"]["value"] == pytest.approx(0.0)
    assert cranio["mean_r_within_speaker"]["value"] == pytest.approx(1.0)
    assert cranio["ratio_error"]["chance"] > 0.02
    shuffled = cranio["shuffled"]
    assert covers(shuffled["mean_r"], 0.0) and covers(shuffled["mean_r_within_speaker"], 0.0)
    assert sum(covers(ratio["r"], 0.0) for ratio in shuffled["ratios"].values()) >= 8  # 95 % intervals: most cover


def _widen_nose(image: np.ndarray, points: np.ndarray, factor: float = 1.1) -> np.ndarray:
    """Stretch the nose region horizontally by ``factor`` about the nose's centre line (smooth fall-off outside)."""
    h, w = image.shape[:2]
    centre = points[31:36, 0].mean()
    half = (points[35, 0] - points[31, 0]) / 2
    top, bottom = points[29, 1], points[33, 1] + 0.05 * (points[33, 1] - points[27, 1])  # eyes and mouth stay out
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    across = np.clip((np.abs(x - centre) - 2.0 * half) / (1.0 * half), 0, 1)
    along = np.clip(np.maximum(top - y, y - bottom) / (0.3 * (bottom - top)), 0, 1)
    weight = (0.5 + 0.5 * np.cos(np.pi * across)) * (0.5 + 0.5 * np.cos(np.pi * along))
    source_x = centre + (x - centre) / (1 + (factor - 1) * weight)
    return np.stack([ndimage.map_coordinates(image[..., c].astype(np.float64), [y, source_x], order=1, mode="nearest")
                     for c in range(3)], axis=-1).round().clip(0, 255).astype(np.uint8)


def test_a_ten_percent_wider_nose_is_detected(tmp_path):
    faces = np.stack([np.asarray(Image.open(embedded_face(person, k)).convert("RGB"))
                      for person in ("jaimealtozano", "javiermuniz") for k in range(0, 40, 4)])
    extractor = DlibFaceExtractor(256, 0)
    real = extractor.extract(faces)
    assert real["detected"].all()
    scale = faces.shape[1] / 256
    widened = np.stack([_widen_nose(face, points * scale)
                        for face, points in zip(faces, real["landmarks"], strict=True)])
    generated = extractor.extract(widened)
    n = len(faces)
    identities = np.repeat(["jaimealtozano", "javiermuniz"], n // 2)
    evalset = EvalSet((SPLIT,), ImagePool(widened, identities, ()), ImagePool(faces, identities, ()),
                      {SPLIT: np.arange(n)}, {SPLIT: np.arange(n)}, {SPLIT: np.arange(n)},
                      np.zeros(0, np.int64), np.zeros(0, np.int64))
    ctx = MetricContext(RunOptions(bootstrap=200), evalset, tmp_path, lambda name: (generated, real))
    ratios = score(ctx, "craniofacial")[SPLIT]["ratios"]
    for name in ("nasal_to_face_width", "nasal_index"):
        bias = ratios[name]["bias"]
        # ln 1.1 = 0.095; dlib's alar points follow the stretch by about 0.07
        assert bias["ci95"][0] > 0.03 and 0.045 < bias["value"] < 0.14, (name, bias)
    for name in set(ratios) - {"nasal_to_face_width", "nasal_index"}:  # measured: every other |bias| < 0.006
        assert abs(ratios[name]["bias"]["value"]) < 0.015, (name, ratios[name]["bias"])


def test_memorization_tells_copies_from_new_faces(bench):
    copies = score(bench.context(bench.nearest_training_face()), "memorization")
    copied = copies[SPLIT]
    assert copied["training_nearer"]["value"] == 1.0 and copied["training_nearer"]["ci95"][0] > 0.9
    assert copied["authenticity"]["value"] == 0.0
    assert copied["c_t"]["ci95"][1] < -3
    fresh = score(bench.context(bench.own_face()), "memorization")[SPLIT]  # held-out real faces: new, not copies
    assert fresh["training_nearer"]["value"] == 0.0 and fresh["authenticity"]["value"] > 0.3
    assert covers(fresh["c_t"], 0.0)
    real = copies["real"]  # held-out faces, each left out of its own comparison
    assert real["training_nearer"]["ci95"][1] < copied["training_nearer"]["ci95"][0]
    assert real["authenticity"]["value"] > 0.3


def test_face_manifolds_of_the_real_faces_themselves(bench):
    same = score(bench.context(bench.own_face()), "face_prdc")[SPLIT]
    for name in ("precision", "recall", "coverage"):
        assert same[name]["value"] == 1.0, name
    constant = score(bench.context(bench.constant()), "face_prdc")[SPLIT]
    assert constant["recall"]["value"] == 0.0 and constant["coverage"]["value"] <= 0.1


def test_same_seed_same_numbers_and_per_clip_values_average_to_the_figures(bench):
    source = bench.nearest_training_face()
    first = {name: score(bench.context(source), name) for name in NEW_METRICS}
    again = {name: score(bench.context(source), name) for name in NEW_METRICS}
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    reseeded = score(bench.context(source, seed=1), "voice_dependence")[SPLIT]
    assert reseeded["speaker_gap"]["ci95"] != first["voice_dependence"][SPLIT]["speaker_gap"]["ci95"]
    ctx = bench.context(source)
    for metric in resolve_metrics(NEW_METRICS):
        if metric.per_clip is None:
            continue
        row = first[metric.name][SPLIT]
        for name, values in metric.per_clip(ctx, SPLIT).items():
            assert values.shape == (len(source),), (metric.name, name)
            cell = row.get(name) or row.get("mean_rank" if name == "rank" else name)
            assert cell is not None, (metric.name, name)
            assert np.nanmean(values) == pytest.approx(cell["value"]), (metric.name, name)


def test_gallery_is_balanced_and_never_shows_a_query_its_own_face(bench):
    ctx = bench.context(bench.own_face())
    gallery = split_gallery(ctx, SPLIT)
    paired = bench.paired
    for x in range(len(gallery)):
        columns, keep = gallery.used_faces(x, paired)
        assert (keep.sum(axis=1) == gallery.per_identity).all()
        shown = np.where(keep, gallery.pool_index[columns][None, :], NO_FACE)
        assert not (shown == paired[:, None]).any()
    assert set(gallery.genders) == {"male", "female"}
    best = score(bench.context(bench.own_face(), gallery_score="best"), "retrieval")[SPLIT]
    assert best["recall@1"]["value"] >= 0.9


def test_gallery_errors(bench, tmp_path):
    with pytest.raises(EvalError, match="--gallery"):
        validate(RunOptions(gallery=tmp_path / "missing.csv"))
    with pytest.raises(EvalError, match="gallery-score"):
        validate(RunOptions(gallery_score="median"))
    bad = tmp_path / "bad.csv"
    bad.write_text("identity,face,audio,split\nx,nowhere.jpg,nowhere.wav,test\n")
    with pytest.raises(EvalError, match=r"--gallery .*bad\.csv: face file not found"):
        split_gallery(bench.context(bench.own_face(), gallery=bad), SPLIT)
    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(EvalError, match=r"--gallery"):
        split_gallery(bench.context(bench.own_face(), gallery=wrong), SPLIT)


def test_reference_records_are_keyed_by_the_gallery(tmp_path):
    from evalkit.gallery import gallery_content_hash
    from evalkit.options import EMBEDDED_GALLERY
    from evalkit.runner import SCORING_SETTINGS

    assert {"gallery_score", "gallery_faces", "matching_n", "permutations"} <= set(SCORING_SETTINGS)
    rows = EMBEDDED_GALLERY.read_text().splitlines()
    copy = tmp_path / "manifest.csv"
    absolute = [rows[0]] + [line.replace("faces/", f"{EMBEDDED_GALLERY.parent}/faces/", 1) for line in rows[1:]]
    copy.write_text("\n".join(absolute) + "\n")
    assert gallery_content_hash(copy) == gallery_content_hash(EMBEDDED_GALLERY)  # paths do not matter, bytes do
    copy.write_text("\n".join(absolute).replace(",male", ",female", 1) + "\n")
    assert gallery_content_hash(copy) != gallery_content_hash(EMBEDDED_GALLERY)
