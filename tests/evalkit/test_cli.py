"""``evalkit run`` and ``evalkit metrics`` end to end on a tiny evaluation set, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from evalkit.features.inception import WEIGHTS_FILE
from evalkit.metrics import all_metrics
from evalkit.options import default_cache_dir
from evalkit.stats import AT_BOUND, read_stats
from generator.checkpoint import INCLUDED_CHECKPOINT, save_generator
from tests.support import REPO, check_cli_error, small_generator, write_csv

FAST_METRICS = "landmark_ratio"


def run_args(checkpoint: Path, data: Path, out: Path, *extra: str | Path) -> list[str | Path]:
    """``evalkit run`` on a checkpoint without the reference generators (tested on their own)."""
    return ["run", "--checkpoint", checkpoint, "--data", data, "--out", out, "--device", "cpu", "--bootstrap", "20",
            "--references", "none", *extra]


def test_run_writes_images_results_history_and_table(evalkit_cli, saved_checkpoint, eval_manifest, inception_weights,
                                                     tmp_path):
    out = tmp_path / "runs" / "first"
    result = evalkit_cli(*run_args(saved_checkpoint, eval_manifest, out, "--inception-weights", inception_weights,
                                   "--inception-dims", "64", "--save-stats"))
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert document["splits"] == ["seen", "unseen_speech"]
    assert document["data"] == {"seen": {"clips": 4, "real_faces": 4, "identities": 2},
                                "unseen_speech": {"clips": 8, "real_faces": 4, "identities": 2}}
    assert {name: entry["status"] for name, entry in document["results"].items()} == dict.fromkeys(all_metrics(), "ok")
    assert len(list((out / "generated").rglob("*.png"))) == 12
    assert (out / "generated" / "unseen_speech" / "bob" / "clip_3_1.png").is_file()
    assert len(list((out / "real").rglob("*.png"))) == 8
    accuracy = document["results"]["identity_accuracy"]["rows"]
    assert accuracy["real"]["accuracy"]["n"] == 4 and accuracy["real"]["training_accuracy"]["n"] == 4
    assert accuracy["seen"]["accuracy"]["chance"] == 0.5
    assert sum(map(sum, accuracy["seen"]["confusion"]["matrix"])) == 4
    fid = document["results"]["fid"]["rows"]["seen"]["fid"]
    assert fid["ci95"][0] <= fid["ci95"][1] and fid["n"] == {"generated": 4, "real": 4}
    provenance = document["provenance"]
    assert document["generator"]["sha256"] and provenance["generator_sha256"] == document["generator"]["sha256"]
    assert len(provenance["data"]["content_sha256"]) == 64
    assert provenance["weights"]["inception"]["sha256"] and provenance["seed"] == 0
    assert provenance["packages"]["pytorch-fid"]
    assert document["settings"]["features"]["dlib"]["upsample"] == 0
    history = (out.parent / "history.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["figures"]["seen"]["fid.fid"] == fid["value"]
    assert "unseen_speech" in result.stdout and "identity_accuracy.accuracy" in result.stdout
    assert "warning: fid on seen: 4 samples < 64 feature dimensions" in result.stderr
    for split in ("seen", "unseen_speech"):
        generated = read_stats(out / "stats" / f"{split}_generated_fid.npz")
        real = read_stats(out / "stats" / f"{split}_real_fid.npz")
        value = document["results"]["fid"]["rows"][split]["fid"]["value"]
        assert value == pytest.approx(calculate_frechet_distance(*generated, *real), rel=1e-6)
        reference = document["results"]["fid"]["rows"][split]["fid"]["reference_stats"]
        cache = Path(document["settings"]["cache_dir"])
        assert cache == tmp_path / "cache" / "evalkit" / "features"
        assert np.array_equal(read_stats(cache / reference)[1], real[1])
    # clips of one face are one cluster (no group column): every interval of a per-clip figure resamples faces
    unseen = document["results"]
    assert unseen["fid"]["rows"]["unseen_speech"]["fid"]["clusters"] == {"by": "face", "clusters": 4}
    assert unseen["fid"]["rows"]["unseen_speech"]["fid"]["ci_method"].startswith(
        "cluster bootstrap, percentile interval re-centred on the estimate, truncated at 0")
    ratio = unseen["landmark_ratio"]["rows"]["unseen_speech"]["ratio"]
    expected = AT_BOUND if ratio["value"] in (0.0, 1.0) else "cluster bootstrap"  # no detection at all: a bound
    assert ratio["clusters"] == {"by": "face", "clusters": 4} and ratio["ci_method"].startswith(expected)
    assert unseen["landmark_ratio"]["rows"]["seen"]["ratio"]["ci_method"] == "wilson"  # one clip per face
    assert "conditional on the real faces" in unseen["precision_recall"]["rows"]["seen"]["precision"]["ci_method"]


def test_run_folder_is_a_survey_study_input(evalkit_cli, saved_checkpoint, eval_manifest, tmp_path):
    """pairs.csv pairs every generated face with its clip's real face; survey-app create-study reads it."""
    from survey_app.manifest import load_run_input

    out = tmp_path / "run"
    assert evalkit_cli(*run_args(saved_checkpoint, eval_manifest, out, "--metrics", FAST_METRICS)).exit_code == 0
    run_input = load_run_input(out)
    assert len(run_input.pairs) == 12
    record = json.loads((out / "results.json").read_text())
    assert run_input.run_metadata["generator"]["sha256"] == record["generator"]["sha256"]
    assert run_input.run_metadata["data"] == record["provenance"]["data"]
    assert run_input.run_metadata["code_version"] == record["provenance"]["code_version"]
    rows = (out / "pairs.csv").read_text().splitlines()
    assert rows[0] == "split,identity,real,generated,clip,audio,group"
    assert any(r.startswith("unseen_speech,bob,real/bob/") and r.endswith(
        ",generated/unseen_speech/bob/clip_3_1.png,unseen_speech/bob/clip_3_1,audio/unseen_speech/bob/clip_3_1.ogg,")
        for r in rows)


def figures(out: Path) -> dict:
    document = json.loads((out / "results.json").read_text())
    return {name: entry["rows"] for name, entry in document["results"].items()}


def test_same_seed_same_numbers_and_features_come_from_the_cache(evalkit_cli, saved_checkpoint, eval_manifest,
                                                                  tmp_path):
    common = ("--metrics", "face_fd,identity_similarity", "--cache-dir", tmp_path / "cache")
    assert evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "a", *common)).exit_code == 0
    cached = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(cached) == 4  # features of generated and real faces, the real faces' statistics of each split
    assert len(list((tmp_path / "cache" / "reference_stats").glob("*.npz"))) == 2  # written once, then reused
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "b", *common)).exit_code == 0
    assert sorted((tmp_path / "cache").rglob("*.npz")) == cached
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert figures(tmp_path / "a") == figures(tmp_path / "b")
    seeded = run_args(saved_checkpoint, eval_manifest, tmp_path / "c", *common, "--seed", "1")
    assert evalkit_cli(*seeded).exit_code == 0
    seed1 = figures(tmp_path / "c")["face_fd"]["seen"]["face_fd"]
    seed0 = figures(tmp_path / "a")["face_fd"]["seen"]["face_fd"]
    assert seed1["value"] == seed0["value"] and seed1["ci95"] != seed0["ci95"]


def test_a_rerun_reuses_the_stored_scores_and_a_damaged_entry_is_computed_again(evalkit_cli, saved_checkpoint,
                                                                                 eval_manifest, tmp_path, monkeypatch):
    from evalkit import runner

    common = ("--metrics", "identity_similarity,landmark_ratio", "--cache-dir", tmp_path / "cache")
    assert evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "a", *common)).exit_code == 0
    [stored] = (tmp_path / "cache" / "scores").glob("*.json")
    real_evaluate = runner.evaluate_metric
    monkeypatch.setattr(runner, "evaluate_metric", lambda *a: pytest.fail("computed again"))
    assert evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "b", *common)).exit_code == 0
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert first["results"] == second["results"] and first["per_clip"] == second["per_clip"]
    assert first["warnings"] == second["warnings"]
    stored.write_text("{not json")
    monkeypatch.setattr(runner, "evaluate_metric", real_evaluate)
    assert evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "c", *common)).exit_code == 0
    assert json.loads((tmp_path / "c" / "results.json").read_text())["results"] == first["results"]
    assert json.loads(stored.read_text())["results"] == first["results"]  # the damaged entry was replaced
    other = run_args(saved_checkpoint, eval_manifest, tmp_path / "d", *common, "--sampling", "dropout")
    assert evalkit_cli(*other).exit_code == 0  # other faces: other scores, stored beside
    assert len(list((tmp_path / "cache" / "scores").glob("*.json"))) == 2


def test_fid_is_unavailable_without_weights_never_a_crash(evalkit_cli, saved_checkpoint, eval_manifest, tmp_path):
    """Default metrics: the Inception metrics are reported unavailable with the reason, every other one computed;
    asking for one by name is one error before any face is generated."""
    result = evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "r"))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "r" / "results.json").read_text())
    for name in ("fid", "kid", "precision_recall"):
        entry = document["results"][name]
        assert entry["status"] == "unavailable" and "rows" not in entry
        assert WEIGHTS_FILE in entry["reason"]
        assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in entry["reason"]
    assert {n for n, e in document["results"].items() if e["status"] == "ok"} == \
        set(all_metrics()) - {"fid", "kid", "precision_recall"}
    assert "unavailable" in result.stdout and WEIGHTS_FILE in result.stdout
    explicit = evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "x", "--metrics",
                                     f"fid,{FAST_METRICS}"))
    assert explicit.exit_code == 2 and explicit.stderr.startswith("error: fid (unavailable): FID Inception weights")
    assert not (tmp_path / "x" / "generated").exists()


def test_json_flag_prints_results_json(evalkit_cli, saved_checkpoint, eval_manifest, tmp_path):
    result = evalkit_cli(*run_args(saved_checkpoint, eval_manifest, tmp_path / "j", "--metrics", FAST_METRICS,
                                   "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((tmp_path / "j" / "results.json").read_text())
    assert not (tmp_path / "j" / "stats").exists()  # statistics only with --save-stats


def test_default_run_folder_and_report_hook(evalkit_cli, saved_checkpoint, eval_manifest, tmp_path, monkeypatch):
    rendered = []

    def render(run_dir: Path, figure_folder: Path | None = None) -> Path:
        rendered.append(run_dir)
        assert figure_folder == default_cache_dir() / "figures"  # report figures shared through the cache
        return run_dir / "report.html"

    monkeypatch.setattr("reports.render.render", render)
    result = evalkit_cli("run", "--checkpoint", saved_checkpoint, "--data", eval_manifest, "--metrics", FAST_METRICS,
                         "--bootstrap", "5")
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert (run_dir / "results.json").is_file() and (tmp_path / "runs" / "history.jsonl").is_file()
    assert rendered == [run_dir]
    assert result.stdout.rstrip().endswith(f"report: {run_dir / 'report.html'}")


def test_metrics_command_lists_every_metric_and_its_needs(evalkit_cli):
    result = evalkit_cli("metrics")
    assert result.exit_code == 0
    for name in ("fid", "kid", "precision_recall", "face_fd", "face_kid", "identity_accuracy", "landmark_ratio",
                 "identity_similarity"):
        assert f"{name}: " in result.stdout
    assert "Inception weights" in result.stdout and "dlib" in result.stdout


@pytest.fixture
def other_checkpoint(tmp_path):
    def make(image_size: int = 64, seconds: float = 0.3, identities: tuple[str, ...] = ("alice", "bob")) -> Path:
        path = tmp_path / "ckpt" / f"g{image_size}_{seconds}_{len(identities)}.safetensors"
        model = small_generator(image_size, seconds, len(identities))
        return save_generator(path, model, list(identities), {"data": {"normalisation": "peak"}})

    return make


def test_bad_inputs_end_in_one_line_errors(evalkit_cli, saved_checkpoint, eval_manifest, inception_weights,
                                           other_checkpoint, tmp_path):
    def error(*args, data: Path = eval_manifest, checkpoint: Path = saved_checkpoint) -> str:
        return check_cli_error(evalkit_cli(*run_args(checkpoint, data, tmp_path / "out", *args)))

    assert "checkpoint not found" in error(checkpoint=tmp_path / "missing.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    assert "unknown checkpoint type" in error(checkpoint=tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    assert "manifest not found" in error(data=tmp_path / "empty")
    bad = write_csv(tmp_path / "bad" / "manifest.csv", ["identity", "face"], [["alice", "x.png"]])
    assert "missing required column" in error(data=bad)
    assert "unknown metric(s) ['fidd']" in error("--metrics", "fidd")
    assert "no pairs in split(s) ['unseen_identity']" in error("--splits", "seen,unseen_identity")
    assert "Inception weights file not found" in error("--inception-weights", tmp_path / "none.pth")
    foreign = tmp_path / "foreign.pth"
    import torch

    torch.save(torch.nn.Linear(2, 2).state_dict(), foreign)
    assert "another architecture" in error("--inception-weights", foreign, "--metrics", "fid")
    assert "--vggface-weights" in error("--identity-backbone", "vggface", "--metrics", "identity_accuracy")
    assert "unknown identity backbone" in error("--identity-backbone", "arcface")
    assert "does not match the data" in error(checkpoint=other_checkpoint(identities=("carol", "dave")))
    assert "shorter than" in error("--metrics", FAST_METRICS, checkpoint=other_checkpoint(seconds=1.0))
    assert "smaller than the generator's 128 px" in error("--metrics", FAST_METRICS,
                                                           checkpoint=other_checkpoint(image_size=128))


@pytest.mark.slow
def test_default_run_on_the_embedded_set(evalkit_cli, tmp_path):
    if not INCLUDED_CHECKPOINT.is_file():
        pytest.skip(f"included checkpoint {INCLUDED_CHECKPOINT} not present yet")
    result = evalkit_cli("run")
    assert result.exit_code == 0, result.output
    (results,) = (tmp_path / "runs").glob("*/results.json")
    document = json.loads(results.read_text())
    assert document["splits"] == ["seen", "unseen_speech"]
    assert document["results"]["fid"]["status"] == "unavailable"
    results = document["results"]
    real = {name: entry["rows"]["real"] for name, entry in results.items() if "real" in entry.get("rows", {})}
    assert real["landmark_ratio"]["ratio"]["value"] > 0.9
    assert real["identity_accuracy"]["accuracy"]["value"] > 0.9
    assert np.isfinite(document["results"]["face_fd"]["rows"]["seen"]["face_fd"]["value"])


def test_torchrun_two_processes_give_the_same_results_as_one(saved_checkpoint, eval_manifest, inception_weights,
                                                            tmp_path):
    common = ["--checkpoint", saved_checkpoint, "--data", eval_manifest, "--device", "cpu", "--bootstrap", "20",
              "--metrics", "fid,face_fd,identity_accuracy,landmark_ratio", "--inception-weights", inception_weights,
              "--inception-dims", "64", "--batch-size", "3", "--sampling", "dropout"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "evalkit", "run", "--out", tmp_path / "one", "--cache-dir", tmp_path / "c1"]
    double = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "evalkit",
              "run", "--out", tmp_path / "two", "--cache-dir", tmp_path / "c2"]
    for command in (single, double):
        done = subprocess.run([str(c) for c in command + common], env=env, capture_output=True, text=True, check=False,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = figures(tmp_path / "one"), figures(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "results.json").read_text())["settings"]["processes"] == 2
    assert one == two
    for image in (tmp_path / "one" / "generated").rglob("*.png"):
        twin = tmp_path / "two" / image.relative_to(tmp_path / "one")
        assert image.read_bytes() == twin.read_bytes()


def test_fid_command_equals_pytorch_fid_on_folders_and_npz(evalkit_cli, inception_weights, tmp_path):
    from unittest import mock

    import torch
    from PIL import Image
    from pytorch_fid import inception
    from pytorch_fid.fid_score import calculate_fid_given_paths

    rng = np.random.default_rng(0)
    for folder, shift in (("a", 0), ("b", 60)):
        (tmp_path / folder).mkdir()
        for k in range(6):
            pixels = np.clip(rng.normal(120 + shift, 40, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{k}.png")
    common = ("--inception-weights", inception_weights, "--dims", "64", "--device", "cpu", "--cache-dir",
              tmp_path / "cache")
    result = evalkit_cli("fid", tmp_path / "a", tmp_path / "b", *common)
    assert result.exit_code == 0, result.output
    ours = float(result.stdout.split("FID:")[1])
    state = torch.load(inception_weights, weights_only=True)
    with mock.patch.object(inception, "load_state_dict_from_url", return_value=state):
        theirs = calculate_fid_given_paths([str(tmp_path / "a"), str(tmp_path / "b")], 6, "cpu", 64, num_workers=0)
    assert ours == pytest.approx(theirs, rel=1e-4)
    assert evalkit_cli("fid", tmp_path / "a", tmp_path / "a.npz", "--save-stats", *common).exit_code == 0
    from_npz = evalkit_cli("fid", tmp_path / "a.npz", tmp_path / "b", *common)
    assert float(from_npz.stdout.split("FID:")[1]) == pytest.approx(ours, rel=1e-9)
    check_cli_error(evalkit_cli("fid", tmp_path / "a", tmp_path / "a.npz", "--save-stats", *common), "already exists")
    check_cli_error(evalkit_cli("fid", tmp_path / "a", tmp_path / "b", "--dims", "64"), WEIGHTS_FILE)
    (tmp_path / "empty").mkdir()
    check_cli_error(evalkit_cli("fid", tmp_path / "empty", tmp_path / "b", *common), "no images")


def test_fid_of_16bit_and_8bit_copies_is_zero_and_tiny_folders_are_one_error(evalkit_cli, inception_weights, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for k in range(4):
        grey = rng.integers(0, 256, (40, 40), dtype=np.uint8)
        sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
        for folder, image in (("eight", Image.fromarray(grey)), ("sixteen", sixteen)):
            (tmp_path / folder).mkdir(exist_ok=True)
            image.save(tmp_path / folder / f"{k}.png")
    common = ("--inception-weights", inception_weights, "--dims", "64", "--device", "cpu", "--cache-dir",
              tmp_path / "cache")
    result = evalkit_cli("fid", tmp_path / "eight", tmp_path / "sixteen", *common)
    assert result.exit_code == 0, result.output
    assert float(result.stdout.split("FID:")[1]) == 0.0  # the same pixels, exactly: was 48,700 (white faces)
    (tmp_path / "one").mkdir()
    (tmp_path / "eight" / "0.png").rename(tmp_path / "one" / "0.png")
    check_cli_error(evalkit_cli("fid", tmp_path / "one", tmp_path / "sixteen", *common), "at least 2 samples")
    check_cli_error(evalkit_cli("fid", tmp_path / "one", tmp_path / "one.npz", "--save-stats", *common),
                    "at least 2 samples")
    assert not (tmp_path / "one.npz").exists()


def test_splits_of_one_and_two_clips_give_not_applicable_rows_never_a_crash(evalkit_cli, saved_checkpoint,
                                                                           eval_manifest, inception_weights, tmp_path):
    import csv

    with eval_manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen = [r for r in rows if r["split"] == "seen"]
    unseen = [r for r in rows if r["split"] == "unseen_speech"]
    two_clips_one_face = [r for r in unseen if r["face"] == unseen[0]["face"]][:2]
    small = [dict(seen[0])] + [{**r, "split": "train"} for r in seen[1:]] + two_clips_one_face
    base = eval_manifest.parent
    manifest = write_csv(tmp_path / "small.csv", ["identity", "face", "audio", "split"],
                         [[r["identity"], str(base / r["face"]), str(base / r["audio"]), r["split"]] for r in small])
    result = evalkit_cli(*run_args(saved_checkpoint, manifest, tmp_path / "r", "--inception-weights",
                                   inception_weights, "--inception-dims", "64"))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "r" / "results.json").read_text())["results"]
    for metric in ("fid", "kid", "face_fd", "precision_recall"):
        for split, (clips, faces) in (("seen", (1, 1)), ("unseen_speech", (2, 1))):
            row = results[metric]["rows"][split]
            assert row["status"] == "not applicable", (metric, split, row)
            assert f"this split has {clips} and {faces}" in row["reason"]
    assert results["landmark_ratio"]["rows"]["seen"]["ratio"]["n"] == 1
    assert results["identity_similarity"]["rows"]["unseen_speech"]["same_clip_cosine"]["n"] == 2
    check_cli_error(evalkit_cli(*run_args(saved_checkpoint, manifest, tmp_path / "z", "--splits", "unseen_identity")),
                    "no pairs in split(s) ['unseen_identity']")
