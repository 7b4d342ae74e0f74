"""The generator interface end to end: a user's model by ``module:factory`` and by entry point, finished faces by
``--generated`` (same figures), the reference generators, data without a training split, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.generators import parse_generator_args
from evalkit.generators.reference import FACE_REFERENCE_NAMES, REFERENCE_NAMES
from tests.support import REPO, check_cli_error, write_csv

TOY = "examples.toy_generator:make_generator"
TOY_ARGS = ("--generator-arg", "audio_seconds=0.3")


def args(data: Path, out: Path, *extra: str | Path) -> list[str | Path]:
    return ["run", "--data", data, "--out", out, "--device", "cpu", "--bootstrap", "20", "--references", "none",
            "--cache-dir", out.parent / "cache", *extra]


def figures(run_dir: Path) -> dict:
    """Every metric entry of a run (what must not depend on how the faces reached evalkit)."""
    return json.loads((run_dir / "results.json").read_text())["results"]


@pytest.fixture
def on_repo_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))


def test_a_model_by_module_factory_and_the_same_faces_by_generated_give_identical_figures(
        evalkit_cli, eval_manifest, tmp_path, on_repo_path):
    first = evalkit_cli(*args(eval_manifest, tmp_path / "toy", "--generator", TOY, *TOY_ARGS))
    assert first.exit_code == 0, first.output
    record = json.loads((tmp_path / "toy" / "results.json").read_text())
    assert record["generator"]["kind"] == "python" and record["generator"]["name"] == TOY
    assert record["generator"]["provenance"]["model"] == "toy spectral face"
    assert record["generator"]["provenance"]["source_sha256"] and record["generator"]["image_size"] == 64
    assert record["generator"]["normalisation"] == "peak" and record["generator"]["identities"] is None
    assert {e["status"] for e in record["results"].values()} == {"ok", "unavailable"}  # Inception metrics: no weights
    again = evalkit_cli(*args(eval_manifest, tmp_path / "again", "--generated", tmp_path / "toy"))
    assert again.exit_code == 0, again.output
    assert figures(tmp_path / "again") == figures(tmp_path / "toy")
    replay = json.loads((tmp_path / "again" / "results.json").read_text())["generator"]
    assert replay["kind"] == "images" and replay["provenance"]["files"] == 12


def test_a_folder_mirroring_the_audio_paths_is_read_and_a_missing_face_is_one_error(
        evalkit_cli, eval_manifest, tmp_path, on_repo_path):
    assert evalkit_cli(*args(eval_manifest, tmp_path / "toy", "--generator", TOY, *TOY_ARGS,
                             "--metrics", "landmark_ratio")).exit_code == 0
    mirror = tmp_path / "mirror"
    rows = (tmp_path / "toy" / "generated.csv").read_text().splitlines()[1:]
    for row in rows:
        audio, generated = row.split(",")
        relative = Path(os.path.relpath((tmp_path / "toy" / audio).resolve(), eval_manifest.parent))
        target = (mirror / relative).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((tmp_path / "toy" / generated).read_bytes())
    result = evalkit_cli(*args(eval_manifest, tmp_path / "m", "--generated", mirror, "--metrics", "landmark_ratio"))
    assert result.exit_code == 0, result.output
    assert figures(tmp_path / "m") == figures(tmp_path / "toy")
    removed = sorted(mirror.rglob("*.png"))[:2]
    for path in removed:
        path.unlink()
    error = check_cli_error(evalkit_cli(*args(eval_manifest, tmp_path / "x", "--generated", mirror)),
                            "no generated face for 2 of 12 clip(s)")
    assert removed[0].stem in error
    assert not (tmp_path / "x" / "generated").exists()


def test_a_model_by_entry_point(evalkit_cli, eval_manifest, tmp_path, monkeypatch):
    package = tmp_path / "site" / "toy_speech_face"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text((REPO / "examples" / "toy_generator.py").read_text())
    info = tmp_path / "site" / "toy_speech_face-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-speech-face\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[evalkit.generators]\ntoy = toy_speech_face:make_generator\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = evalkit_cli(*args(eval_manifest, tmp_path / "ep", "--generator", "toy", *TOY_ARGS,
                               "--metrics", "landmark_ratio"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ep" / "results.json").read_text())["generator"]["name"] == "toy"


@pytest.mark.parametrize("name", FACE_REFERENCE_NAMES)
def test_reference_generators_run_like_any_generator(evalkit_cli, eval_manifest, tmp_path, name):
    result = evalkit_cli(*args(eval_manifest, tmp_path / name, "--generator", name,
                               "--metrics", "identity_accuracy,identity_similarity"))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / name / "results.json").read_text())
    assert record["generator"]["kind"] == "reference" and record["references"] == []
    accuracy = record["results"]["identity_accuracy"]["rows"]
    if name in ("mean-face", "nearest-face"):  # real faces of the true speaker
        assert accuracy["seen"]["accuracy"]["value"] == 1.0 and accuracy["unseen_speech"]["accuracy"]["value"] == 1.0
    if name == "nearest-face":  # on training clips the oracle returns the clip's own face
        similarity = record["results"]["identity_similarity"]["rows"]["seen"]["same_clip_cosine"]["value"]
        assert similarity == pytest.approx(1.0)
    if name == "constant":
        assert accuracy["seen"]["accuracy"]["value"] == 0.5  # one face for everyone: one identity predicted


def test_evalkit_run_scores_every_reference_generator_into_the_run_folder(
        evalkit_cli, saved_checkpoint, eval_manifest, tmp_path):
    result = evalkit_cli("run", "--checkpoint", saved_checkpoint, "--data", eval_manifest, "--out", tmp_path / "r",
                         "--device", "cpu", "--bootstrap", "10", "--metrics", "identity_accuracy",
                         "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [r["name"] for r in record["references"]] == list(REFERENCE_NAMES)
    for entry in record["references"]:
        reference = json.loads((tmp_path / "r" / entry["results_file"]).read_text())
        assert reference["generator"]["name"] == entry["name"] and reference["splits"] == record["splits"]
        assert reference["data"] == record["data"]
    assert not (tmp_path / "r" / "references" / "mean-face" / "generated").exists()  # records only: small folders
    paired = record["comparisons"]["mean-face"]["identity_accuracy"]["seen"]["accuracy"]
    assert paired["value"] == pytest.approx(paired["model"] - paired["reference"])
    assert paired["reference"] == 1.0 and paired["verdict"] in ("worse", "no difference")  # the mean face is perfect
    assert paired["ci95"][0] <= paired["value"] <= paired["ci95"][1] and paired["n"] == 4
    stored = sorted((tmp_path / "cache" / "records").glob("*.json"))
    assert len(stored) == len(REFERENCE_NAMES)
    stamps = [p.stat().st_mtime_ns for p in stored]
    again = evalkit_cli("run", "--checkpoint", saved_checkpoint, "--data", eval_manifest, "--out", tmp_path / "r2",
                        "--device", "cpu", "--bootstrap", "10", "--metrics", "identity_accuracy",
                        "--cache-dir", tmp_path / "cache")
    assert again.exit_code == 0, again.output
    assert [p.stat().st_mtime_ns for p in stored] == stamps  # reused, not recomputed
    for entry in record["references"]:
        first, second = (json.loads((tmp_path / d / entry["results_file"]).read_text()) for d in ("r", "r2"))
        assert first["results"] == second["results"] and second["run_dir"].endswith("r2/references/" + entry["name"])
    other_seed = evalkit_cli("run", "--checkpoint", saved_checkpoint, "--data", eval_manifest, "--out",
                             tmp_path / "r3", "--device", "cpu", "--bootstrap", "10", "--metrics",
                             "identity_accuracy", "--cache-dir", tmp_path / "cache", "--seed", "1")
    assert other_seed.exit_code == 0
    assert len(list((tmp_path / "cache" / "records").glob("*.json"))) == 2 * len(REFERENCE_NAMES)


def test_data_without_a_training_split_computes_every_metric_that_applies(evalkit_cli, eval_manifest, tmp_path,
                                                                         on_repo_path):
    """A ``wav2pix data build`` of new speakers has only unseen_identity clips: no identity head."""
    rows = [line.split(",") for line in eval_manifest.read_text().splitlines()[1:]]
    base = eval_manifest.parent
    manifest = write_csv(tmp_path / "new" / "manifest.csv", ["identity", "face", "audio", "split"],
                         [[i, str(base / f), str(base / a), "unseen_identity"] for i, f, a, _ in rows])
    result = evalkit_cli(*args(manifest, tmp_path / "u", "--generator", TOY, *TOY_ARGS))
    assert result.exit_code == 0, result.output
    results = figures(tmp_path / "u")
    assert results["identity_accuracy"]["status"] == "not applicable"
    assert "training split" in results["identity_accuracy"]["reason"]
    assert results["landmark_ratio"]["status"] == "ok" and results["face_fd"]["status"] == "ok"
    assert "not applicable (identity_accuracy)" in result.stdout
    explicit = evalkit_cli(*args(manifest, tmp_path / "e", "--generator", TOY, *TOY_ARGS,
                                 "--metrics", "identity_accuracy"))
    check_cli_error(explicit, "identity_accuracy (not applicable): no real faces of a training split")
    assert not (tmp_path / "e" / "generated").exists()


BROKEN = '''
import numpy as np

class Model:
    image_size = 32
    audio_seconds = 0.3
    def __init__(self, size=32, dtype="uint8", rate=16000, crash=False):
        self.size, self.dtype, self.sample_rate, self.crash = size, dtype, rate, crash
    def generate(self, speech, seed):
        if self.crash:
            raise RuntimeError("CUDA out of memory")
        return np.zeros((len(speech), self.size, self.size, 3), dtype=self.dtype)

def make(**kwargs):
    return Model(**kwargs)

def fails(**kwargs):
    raise TypeError("unexpected keyword")
'''


def test_bad_generators_and_arguments_are_one_line_errors(evalkit_cli, eval_manifest, tmp_path, monkeypatch):
    (tmp_path / "broken_model.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))

    def error(*extra: str, fragment: str) -> str:
        return check_cli_error(evalkit_cli(*args(eval_manifest, tmp_path / "out", "--metrics", "landmark_ratio",
                                                 *extra)), fragment)

    error("--generator", "broken_model:make", "--generator-arg", "dtype=float32", fragment="returned float32")
    error("--generator", "broken_model:make", "--generator-arg", "size=16", fragment="expected uint8 (12, 32, 32, 3)")
    error("--generator", "broken_model:make", "--generator-arg", "crash=true",
          fragment="generate() failed: RuntimeError: CUDA out of memory")
    error("--generator", "broken_model:make", "--generator-arg", "rate=22050", fragment="sample_rate 22050 Hz")
    error("--generator", "broken_model:fails", fragment="does not accept these --generator-arg values")
    error("--generator", "broken_model:missing", fragment="has no 'missing'")
    error("--generator", "no_such_module_x:make", fragment="cannot import module 'no_such_module_x'")
    error("--generator", "nonesuch", fragment="unknown generator 'nonesuch'")
    error("--generator", "broken_model:make", "--generator-arg", "novalue", fragment="expected key=value")
    error("--generator", "mean-face", "--checkpoint", "x.safetensors", fragment="--checkpoint is the wav2pix")
    error("--generated", tmp_path, "--generator", "constant", fragment="cannot be combined")
    error("--generated", tmp_path / "none.csv", fragment="not found")
    error("--generator", "constant", "--generator-arg", "image_size=big", fragment="whole number of pixels")
    error("--references", "mean-face,median-face", fragment="unknown reference generator(s) ['median-face']")
    error("--generator", "voice-only", fragment="a descriptor-only reference draws no face")
    (tmp_path / "faces.csv").write_text("clip,face\na.wav,a.png\n")
    error("--generated", tmp_path / "faces.csv", fragment="needs columns audio,generated")


COUNTING = '''
import os
import numpy as np

class Model:
    image_size, audio_seconds = 32, 0.3
    def generate(self, speech, seed):
        with open(os.environ["GENERATE_LOG"], "a") as log:
            log.write(f"{len(speech)}\\n")
        return np.full((len(speech), 32, 32, 3), 100 + seed, dtype=np.uint8)

def make():
    return Model()
'''


def test_generated_faces_are_cached_by_generator_clips_seed_and_batch(evalkit_cli, eval_manifest, tmp_path,
                                                                       monkeypatch):
    (tmp_path / "counting_model.py").write_text(COUNTING)
    monkeypatch.syspath_prepend(str(tmp_path))
    log = tmp_path / "generate.log"
    monkeypatch.setenv("GENERATE_LOG", str(log))
    common = ("--generator", "counting_model:make", "--metrics", "landmark_ratio")
    assert evalkit_cli(*args(eval_manifest, tmp_path / "a", *common)).exit_code == 0
    calls = log.read_text().splitlines()
    assert sum(map(int, calls)) == 12 and len(list((tmp_path / "cache" / "faces").rglob("*.npy"))) == 1
    assert evalkit_cli(*args(eval_manifest, tmp_path / "b", *common)).exit_code == 0
    assert log.read_text().splitlines() == calls  # read back, not generated again
    assert figures(tmp_path / "a") == figures(tmp_path / "b")
    assert [p.read_bytes() for p in sorted((tmp_path / "a" / "generated").rglob("*.png"))] == \
        [p.read_bytes() for p in sorted((tmp_path / "b" / "generated").rglob("*.png"))]
    assert evalkit_cli(*args(eval_manifest, tmp_path / "c", *common, "--seed", "1")).exit_code == 0
    assert len(log.read_text().splitlines()) == 2 * len(calls)  # another seed: generated again
    assert evalkit_cli(*args(eval_manifest, tmp_path / "d", *common, "--batch-size", "5")).exit_code == 0
    assert len(list((tmp_path / "cache" / "faces").rglob("*.npy"))) == 3


def test_paired_differences_and_verdicts():
    from evalkit.comparison import paired_difference, verdict
    from evalkit.stats import Clusters, seeded_rng

    clusters = Clusters(np.repeat(np.arange(10), 3), 10, "group")
    ones, zeros = np.ones(30), np.zeros(30)
    same = paired_difference(ones, ones, clusters, 200, seeded_rng(0, "t"), "accuracy")
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0] and same["verdict"] == "no difference"
    assert paired_difference(ones, zeros, clusters, 200, seeded_rng(0, "t"), "accuracy")["verdict"] == "better"
    assert paired_difference(ones, zeros, clusters, 200, seeded_rng(0, "t"), "ratio_error")["verdict"] == "worse"
    nan = np.where(np.arange(30) < 20, np.nan, 1.0)
    assert paired_difference(nan, zeros, clusters, 200, seeded_rng(0, "t"), "accuracy")["n"] == 10
    assert verdict(-0.2, -0.1, lower_is_better=True) == "better" and verdict(-0.1, 0.1, False) == "no difference"


def test_generator_args_are_yaml_scalars():
    assert parse_generator_args(("n=3", "flag=true", "path=a.pth", "x=1.5", "empty=")) == \
        {"n": 3, "flag": True, "path": "a.pth", "x": 1.5, "empty": ""}


@pytest.mark.slow
def test_torchrun_two_processes_generate_the_same_faces_with_a_python_generator(eval_manifest, tmp_path):
    common = ["--data", eval_manifest, "--device", "cpu", "--bootstrap", "10", "--metrics", "landmark_ratio,face_fd",
              "--generator", TOY, *TOY_ARGS, "--batch-size", "3", "--references", "mean-face"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "evalkit", "run", "--out", tmp_path / "one", "--cache-dir", tmp_path / "c1"]
    double = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "evalkit",
              "run", "--out", tmp_path / "two", "--cache-dir", tmp_path / "c2"]
    for command in (single, double):
        done = subprocess.run([str(c) for c in command + common], env=env, capture_output=True, text=True,
                              check=False, timeout=600, cwd=REPO)
        assert done.returncode == 0, done.stderr[-3000:]
    assert figures(tmp_path / "one") == figures(tmp_path / "two")
    one = sorted((tmp_path / "one" / "generated").rglob("*.png"))
    assert one and all(p.read_bytes() == (tmp_path / "two" / p.relative_to(tmp_path / "one")).read_bytes()
                       for p in one)
    assert np.array_equal(*(json.loads((tmp_path / d / "references" / "mean-face" / "results.json").read_text())
                            ["results"]["face_fd"]["rows"]["seen"]["face_fd"]["ci95"] for d in ("one", "two")))


def test_nearest_face_search_picks_what_an_exhaustive_loop_picks(monkeypatch):
    """The nearest-face oracle's library search (in blocks of clips) against one NumPy pass per clip over its
    speaker's training faces, on the embedded set: the same face for every clip, ties to the first."""
    from evalkit import runner
    from evalkit.distributed import Shard
    from evalkit.generators import reference
    from evalkit.generators.base import GenerationJob
    from evalkit.options import EMBEDDED_DATA, RunOptions

    inputs = runner.prepare(RunOptions(data=EMBEDDED_DATA, device="cpu", references=()))
    job = GenerationJob(inputs.pairs, 0, 64, Shard(), inputs.real.reference(inputs.pairs))
    monkeypatch.setattr(reference, "SEARCH_BLOCK", 7)
    images = job.real.pool.images
    expected = np.empty(len(job.pairs), dtype=np.int64)
    for identity, clips in reference._by_identity(job).items():
        candidates = reference.reference_faces(job.real, identity, clips)
        pixels = images[candidates].reshape(len(candidates), -1).astype(np.int64)
        for clip in clips:
            target = images[job.real.paired[clip]].reshape(1, -1).astype(np.int64)
            expected[clip] = candidates[np.argmin(((pixels - target) ** 2).sum(axis=1))]
    drawn = reference.nearest_face(job)
    assert drawn.palette is images  # drawn from the pool itself: no copy of the faces until they are written out
    np.testing.assert_array_equal(drawn.index, expected)


def test_reference_faces_and_real_faces_are_memory_maps_of_removed_scratch_files(tmp_path):
    """With a cache folder, the real faces and a reference generator's faces are written into memory maps whose
    files are removed at once (memory flat in the number of clips, nothing left on disk), holding what the palette
    draws give; without one they are plain arrays with the same faces."""
    from evalkit import runner
    from evalkit.distributed import Shard
    from evalkit.generators import reference
    from evalkit.generators.base import GenerationJob
    from evalkit.options import EMBEDDED_DATA, RunOptions

    inputs = runner.prepare(RunOptions(data=EMBEDDED_DATA, device="cpu", references=(), cache_dir=tmp_path))
    assert isinstance(inputs.real.pool.images, np.memmap)
    plain = runner.load_real_faces(inputs.manifest, inputs.splits, 64)
    assert not isinstance(plain.pool.images, np.memmap)
    np.testing.assert_array_equal(np.asarray(inputs.real.pool.images), plain.pool.images)
    source = reference.ReferenceSource("random-face", 64)
    for cache_dir in (tmp_path, None):
        job = GenerationJob(inputs.pairs, 0, 64, Shard(), inputs.real.reference(inputs.pairs), cache_dir)
        drawn = reference.random_face(job)
        faces = source.faces(job)
        assert isinstance(faces, np.memmap) == (cache_dir is not None)
        np.testing.assert_array_equal(np.asarray(faces), drawn.palette[drawn.index])
    assert not list((tmp_path / "scratch").iterdir())


def test_mean_and_constant_faces_in_blocks_equal_the_whole_pool_formulas(monkeypatch):
    """The mean-face and constant references, summing and searching ``SEARCH_BLOCK`` faces at a time (7 here),
    draw what the formulas on every face at once give: each speaker's rounded pixel mean, and the face nearest to
    the mean of all reference faces."""
    from evalkit import runner
    from evalkit.distributed import Shard
    from evalkit.generators import reference
    from evalkit.generators.base import GenerationJob
    from evalkit.options import EMBEDDED_DATA, RunOptions

    inputs = runner.prepare(RunOptions(data=EMBEDDED_DATA, device="cpu", references=()))
    job = GenerationJob(inputs.pairs, 0, 64, Shard(), inputs.real.reference(inputs.pairs))
    monkeypatch.setattr(reference, "SEARCH_BLOCK", 7)
    images = job.real.pool.images
    groups = reference._by_identity(job)
    mean = reference.mean_face(job)
    for k, (identity, clips) in enumerate(groups.items()):
        faces = images[reference.reference_faces(job.real, identity, clips)].astype(np.float64)
        np.testing.assert_array_equal(mean.palette[k], np.round(faces.mean(axis=0)).astype(np.uint8))
        assert (mean.index[clips] == k).all()
    candidates = np.unique(np.concatenate([reference.reference_faces(job.real, identity, clips)
                                           for identity, clips in groups.items()]))
    pixels = images[candidates].reshape(len(candidates), -1).astype(np.float64)
    expected = candidates[np.argmin(((pixels - pixels.mean(axis=0)) ** 2).sum(axis=1))]
    assert len(candidates) > 7 and set(reference.constant(job).index.tolist()) == {expected}


def test_a_cache_folder_that_cannot_hold_the_scratch_files_is_one_clear_error(tmp_path):
    """A --cache-dir that is a file (no scratch folder can be made in it) stops the run with one EvalError naming
    the folder and what to do, for the real faces and for a reference generator's faces."""
    from evalkit import runner
    from evalkit.distributed import Shard
    from evalkit.errors import EvalError
    from evalkit.generators import reference
    from evalkit.generators.base import GenerationJob
    from evalkit.options import EMBEDDED_DATA, RunOptions

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with pytest.raises(EvalError, match="cannot write the real faces' scratch file .*pick another --cache-dir"):
        runner.prepare(RunOptions(data=EMBEDDED_DATA, device="cpu", references=(), cache_dir=blocked))
    inputs = runner.prepare(RunOptions(data=EMBEDDED_DATA, device="cpu", references=(), cache_dir=tmp_path / "ok"))
    job = GenerationJob(inputs.pairs, 0, 64, Shard(), inputs.real.reference(inputs.pairs), blocked)
    with pytest.raises(EvalError, match="cannot write the reference faces' scratch file .*pick another --cache-dir"):
        reference.ReferenceSource("constant", 64).faces(job)
