"""Fast checks of the pieces: table cells, the seed table's matching, the difference interval, the training log."""

from __future__ import annotations

import pytest

from evalkit.experiments.compare import difference
from evalkit.experiments.scoring import options_from_settings
from evalkit.options import RunOptions
from evalkit.record import format_figure, metric_cell
from evalkit.sections import Section, write_section
from evalkit.stats import proportion_figure, wilson_interval
from reports import figures
from reports.run_files import read_training_log, training_log_path
from reports.seed import audio_length_runs, seed_table
from reports.tables import every_figure_table, headline_table, verdict_summary, verdict_table
from tests.reports.support import write_train_log


def test_mover_difference_of_wilson_intervals_is_newcombes_hybrid_score_interval():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    a = {"value": 48 / 80, "ci95": list(wilson_interval(48, 80))}
    b = {"value": 56 / 70, "ci95": list(wilson_interval(56, 70))}
    d = difference(a, b)
    assert d["value"] == pytest.approx(0.2)
    assert d["ci95"] == pytest.approx([0.0524, 0.3339], abs=1e-4)
    assert d["excludes_zero"]
    assert not difference(a, a)["excludes_zero"]


def test_cells_say_why_a_figure_is_missing():
    results = {
        "fid": {"status": "unavailable", "reason": "FID Inception weights x.pth not found: put it in y",
                "columns": ["fid"]},
        "identity_accuracy": {"status": "ok", "columns": ["accuracy"], "rows": {
            "seen": {"accuracy": proportion_figure([True, True, False, True], 0.5)},
            "unseen_identity": {"status": "not applicable", "reason": "identities ['carol'] have no real faces"}}},
    }
    assert metric_cell(results, "fid", "fid", "seen") == "unavailable¹"
    assert metric_cell(results, "kid", "kid", "seen").startswith("not computed")
    assert metric_cell(results, "identity_accuracy", "accuracy", "unseen_speech").startswith("not evaluated")
    assert metric_cell(results, "identity_accuracy", "accuracy", "real").startswith("— (no real-data row")
    assert "not applicable" in metric_cell(results, "identity_accuracy", "accuracy", "unseen_identity")
    low, high = wilson_interval(3, 4)
    assert metric_cell(results, "identity_accuracy", "accuracy", "seen") == \
        f"75.0 % [{100 * low:.1f}, {100 * high:.1f}] (chance 50.0 %)"
    assert format_figure({"value": 1.5, "ci95": [1.25, 2.0], "chance": None, "ci_method": "bootstrap"}) == \
        "1.5 [1.25, 2]"


def test_seed_figures_are_set_beside_ours_only_at_the_same_audio_length():
    cell = proportion_figure([True] * 9 + [False], None)
    document = {
        "splits": ["seen"],
        "settings": {"audio_seconds": 0.7, "image_size": 64, "identity_backbone": "dlib-resnet",
                     "detector_size": 256, "detector_upsample": 0},
        "generator": {"identities": ["alice", "bob"]},
        "results": {"landmark_ratio": {"status": "ok", "columns": ["ratio"], "rows": {"seen": {"ratio": cell}}}},
    }
    rows = {row[1]: row for row in seed_table(document).rows}
    assert rows["89.12 %"][3].startswith("90.0 %")
    assert rows["90.25 %"][3] == rows["81.16 %"][3] == "not measured¹"
    assert seed_table(document).note.count("¹ not measured: this generator uses 0.7 s audio") == 1
    assert rows["50.08 %"][2].endswith("chance 10 %")
    assert rows["50.08 %"][3].startswith("not computed")
    assert rows["50.08 %"][4].startswith("not evaluated")
    assert "2 identities (chance 50 %)" in seed_table(document).note


def test_seed_rows_of_other_audio_lengths_come_from_the_folders_audio_length_experiment(tmp_path):
    def results(hits: int) -> dict:
        cell = proportion_figure([True] * hits + [False] * (10 - hits), None)
        return {"landmark_ratio": {"status": "ok", "columns": ["ratio"], "rows": {"seen": {"ratio": cell}}}}

    data = {f"{s:g} s": {"run_dir": f"runs/{k}", "results": results(hits), "generator": f"ckpt_{s:g}s",
                         "audio_seconds": s, "image_size": size}
            for k, (s, hits, size) in enumerate([(0.3, 6, 64), (0.7, 8, 64), (1.0, 9, 128)])}
    (tmp_path / "experiments" / "audio-length").mkdir(parents=True)
    write_section(tmp_path / "experiments" / "audio-length",
                  Section("audio-length", "audio length", "", "evalkit experiment audio-length", {}, [], [], data))
    by_length = audio_length_runs(tmp_path, 64)
    assert sorted(by_length) == [0.3, 0.7]  # the 128 px checkpoint is not a 64 px row
    document = {"splits": ["seen"], "settings": {"audio_seconds": 1.0, "image_size": 64,
                                                 "identity_backbone": "dlib-resnet", "detector_size": 256,
                                                 "detector_upsample": 0},
                "generator": {"identities": ["alice", "bob"]}, "results": results(10)}
    rows = {row[1]: row for row in seed_table(document, by_length).rows}
    assert rows["81.16 %"][3].startswith("60.0 %") and rows["89.12 %"][3].startswith("80.0 %")
    assert rows["90.25 %"][3].startswith("100.0 %")
    assert "the 0.3 s checkpoint ckpt_0.3s" in seed_table(document, by_length).note
    assert audio_length_runs(tmp_path / "elsewhere", 64) == {}


def test_training_log_is_found_from_the_sidecar_or_beside_the_checkpoint(tmp_path):
    log = write_train_log(tmp_path / "out" / "train_log.jsonl", epochs=4)
    with log.open("a") as handle:
        handle.write("not json\n")
    assert training_log_path({"training": {"log": str(log)}}) == log
    moved = {"training": {"log": "/nonexistent/train_log.jsonl"},
             "path": str(tmp_path / "out" / "epoch_0004" / "generator.safetensors")}
    assert training_log_path(moved) == log
    assert training_log_path({"training": {}, "path": str(tmp_path / "elsewhere" / "g.safetensors")}) is None
    assert [r["epoch"] for r in read_training_log(log)] == [1, 2, 3, 4]


def test_run_options_come_back_from_the_recorded_settings(tmp_path):
    options = RunOptions(checkpoint=tmp_path / "c.safetensors", metrics=("fid", "kid"), seed=3, cache_dir=tmp_path)
    settings = {**options.to_dict(), "device": "cpu", "image_size": 64, "features": {}}
    assert options_from_settings(settings) == RunOptions(**{**options.__dict__, "device": "cpu"})


def test_each_unavailable_reason_is_one_mark_and_one_note():
    weights = "FID Inception weights pt_inception-2015-12-05-6726825d.pth not found: put that file in /x/"
    results = {name: {"status": "unavailable", "reason": weights, "columns": [name]}
               for name in ("fid", "kid", "precision_recall")}
    results["identity_accuracy"] = {"status": "unavailable", "reason": "the vggface backbone needs --vggface-weights",
                                    "columns": ["accuracy"]}
    document = {"splits": ["seen", "unseen_speech", "unseen_identity"], "results": results}
    table = headline_table(document)
    cells = [cell for row in table.rows for cell in row[1:]]
    # fid and kid columns; identity accuracy
    assert cells.count("unavailable¹") == 2 * 4 and cells.count("unavailable²") == 4
    assert not any(weights in cell for cell in cells)
    assert table.note.count(weights) == 1 and "¹ fid, kid, precision_recall unavailable: " + weights in table.note
    assert "² identity_accuracy unavailable: the vggface backbone needs --vggface-weights." in table.note
    every = every_figure_table(document)
    assert sum(weights in cell for row in every.rows for cell in row) == 0 and every.note.count(weights) == 1


def _verdict_row(label: str, split: str, verdict: str) -> dict:
    return {"metric": "m", "figure": "f", "label": label, "split": split, "reference": "mean-face",
            "reference_label": "Per-identity mean face", "model": 0.8, "reference_value": 0.9, "difference": -0.1,
            "ci95": [-0.2, -0.05], "n": 10, "ci_method": "m", "lower_is_better": False, "verdict": verdict}


def test_the_verdict_is_told_in_words_and_as_a_table():
    document = {"verdict": [_verdict_row("Landmark ratio", "seen", "worse"),
                            _verdict_row("Identity accuracy", "seen", "better"),
                            _verdict_row("Same-clip cosine", "seen", "no difference"),
                            _verdict_row("Landmark ratio", "unseen_speech", "no difference")]}
    assert verdict_summary(document) == [
        "Seen: the model beats the best trivial generator on 1 of 3 figures (Identity accuracy), is worse on 1 "
        "(Landmark ratio) and cannot be told apart on 1.",
        "Unseen speech: the model beats the best trivial generator on 0 of 1 figures and cannot be told apart on 1."]
    table = verdict_table(document)
    assert table.rows[0] == ["Landmark ratio", "seen", "0.8", "Per-identity mean face: 0.9", "-0.1 [-0.2, -0.05]",
                             "worse"]
    assert verdict_table({}) is None and verdict_summary({}) == []


def test_a_figure_is_drawn_once_for_the_same_inputs(tmp_path, monkeypatch):
    cell = {"value": 0.5, "ci95": [0.4, 0.6], "chance": 0.5}
    path = figures.bar_chart(tmp_path / "bars.png", "t", ["a"], {"s": [cell]}, "y")
    drawn = path.read_bytes()
    real = figures._pyplot
    monkeypatch.setattr(figures, "_pyplot", lambda: pytest.fail("drawn again"))
    assert figures.bar_chart(tmp_path / "bars.png", "t", ["a"], {"s": [cell]}, "y").read_bytes() == drawn
    monkeypatch.setattr(figures, "_pyplot", real)
    figures.bar_chart(tmp_path / "bars.png", "t", ["a"], {"s": [{**cell, "value": 0.55}]}, "y")
    assert path.read_bytes() != drawn and figures.stored_key(path) is not None


def test_a_figure_store_shares_figures_across_run_folders(tmp_path, monkeypatch):
    cell = {"value": 0.5, "ci95": [0.4, 0.6], "chance": 0.5}
    store = tmp_path / "store"
    with figures.figure_store(store):
        first = figures.bar_chart(tmp_path / "run1" / "bars.png", "t", ["a"], {"s": [cell]}, "y")
    assert [p.suffix for p in store.iterdir()] == [".png"]
    real = figures._pyplot
    monkeypatch.setattr(figures, "_pyplot", lambda: pytest.fail("drawn again"))
    with figures.figure_store(store):
        second = figures.bar_chart(tmp_path / "run2" / "bars.png", "t", ["a"], {"s": [cell]}, "y")
    assert second.read_bytes() == first.read_bytes()
    monkeypatch.setattr(figures, "_pyplot", real)
    (store / next(store.iterdir()).name).write_bytes(b"not a png")  # a damaged stored figure is redrawn, not copied
    with figures.figure_store(store):
        third = figures.bar_chart(tmp_path / "run3" / "bars.png", "t", ["a"], {"s": [cell]}, "y")
    assert figures.stored_key(third) == figures.stored_key(first)


def test_an_unwritable_figure_store_still_writes_the_figure(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with figures.figure_store(blocker / "store"):
        path = figures.bar_chart(tmp_path / "bars.png", "t", ["a"], {"s": [{"value": 0.5, "ci95": [0.4, 0.6]}]}, "y")
    assert figures.stored_key(path) is not None
