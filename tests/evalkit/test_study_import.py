"""Reading a survey export (contract 2) and its agreement per item with a run's per-clip values; every bad export is
one clear error with a non-zero exit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from evalkit.cli import main
from evalkit.study import StudyError, agreement, read_study_export, spearman_with_interval
from tests.reports.study_fixture import simulated_summary, write_study_export
from tests.support import check_cli_error

CLIPS = {"seen": [f"seen/alice/clip_{k}" for k in range(12)],
         "unseen_speech": [f"unseen_speech/bob/clip_{k}" for k in range(8)]}


def test_an_export_with_headline_rows_is_read_and_checked(tmp_path):
    export = read_study_export(write_study_export(tmp_path / "export", CLIPS))
    assert export["format"] == "headline" and len(export["sha256"]) == 64
    kinds = {(row["kind"], row["split"], row["arm"]) for row in export["headline"]}
    assert ("matching", "seen", "real") in kinds and ("mos", "unseen_speech", "generated") in kinds
    assert len(export["items"]) == 3 * 20


def test_an_export_of_today_without_headline_is_read_from_its_mos_and_recognition_keys(tmp_path):
    export = read_study_export(write_study_export(tmp_path / "export", CLIPS, headline=None, items=None))
    assert export["format"].startswith("legacy")
    assert {row["kind"] for row in export["headline"]} == {"mos", "recognition"}
    assert export["items"] == []


@pytest.mark.parametrize(("change", "message"), [
    ({"headline": {"not": "a list"}}, "'headline' is not a list"),
    ({"headline": [{"kind": "mos"}]}, "headline[0]: missing field 'label'"),
    ({"items": "x"}, "'items' is not a list"),
    ({"headline": None, "mos": None}, "not a survey-app results_summary.json"),
])
def test_a_wrong_shape_is_one_clear_error(tmp_path, change, message):
    folder = write_study_export(tmp_path / "export", CLIPS, **change)
    with pytest.raises(StudyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_study_export(folder)


def test_a_row_whose_interval_misses_its_estimate_or_with_a_bad_unit_is_refused(tmp_path):
    summary = simulated_summary(CLIPS)
    bad = [dict(summary["headline"][0], low=4.5, high=4.0), dict(summary["headline"][0], unit="percent"),
           dict(summary["headline"][0], n=True), dict(summary["headline"][0], estimate=float("nan"))]
    for row, message in zip(bad, ["is reversed", "unit 'percent'", "field 'n'", "field 'estimate'"],
                            strict=True):
        folder = tmp_path / message.replace(" ", "_").replace("'", "")
        folder.mkdir()
        (folder / "results_summary.json").write_text(json.dumps({**summary, "headline": [row]}))
        with pytest.raises(StudyError, match=message):
            read_study_export(folder)


def test_bad_study_folders_are_one_clear_error_from_the_command(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    check_cli_error(CliRunner().invoke(main, ["report", str(run), "--study-results", str(tmp_path / "missing")]),
                    "not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    check_cli_error(CliRunner().invoke(main, ["report", str(run), "--study-results", str(empty)]),
                    "no results_summary.json")
    (empty / "results_summary.json").write_text("{not json")
    check_cli_error(CliRunner().invoke(main, ["report", str(run), "--study-results", str(empty)]), "not JSON")
    (empty / "results_summary.json").write_text("[1, 2]")
    check_cli_error(CliRunner().invoke(main, ["report", str(run), "--study-results", str(empty)]),
                    "JSON object is expected")
    # evalkit run reads the export before generating anything
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "out"), "--study-results", str(empty)])
    check_cli_error(result, "JSON object is expected")
    assert not (tmp_path / "out").exists()


def test_spearman_with_its_bootstrap_interval():
    rng = np.random.default_rng(0)
    human = rng.normal(size=60)
    automatic = human + rng.normal(scale=0.5, size=60)
    result = spearman_with_interval(human, automatic, np.random.default_rng(1), replicates=500)
    assert result["value"] == pytest.approx(spearmanr(human, automatic).statistic)
    assert result["ci95"][0] < result["value"] < result["ci95"][1] and result["ci95"][0] > 0.5
    assert spearman_with_interval(human, np.ones(60), np.random.default_rng(1))["status"] == "not applicable"
    assert "at least" in spearman_with_interval(human[:3], automatic[:3], np.random.default_rng(1))["reason"]


def test_agreement_joins_items_on_the_clip_and_leaves_out_the_real_arm():
    values = np.linspace(0.0, 1.0, 12)
    document = {"settings": {"seed": 0}, "clips": CLIPS,
                "per_clip": {"identity_similarity": {"seen": {"same_clip_cosine": values.tolist()}}}}
    items = [{"clip": clip, "split": "seen", "identity": "alice", "kind": "matching", "arm": "generated",
              "estimate": float(k % 5), "n": 5} for k, clip in enumerate(CLIPS["seen"])]
    items += [{**items[0], "arm": "real"}, {**items[0], "clip": "seen/alice/elsewhere"}, {**items[0], "clip": None}]
    rows, note = agreement(items, document)
    assert note.startswith("12 of 15 study items joined")
    (row,) = rows
    assert (row["kind"], row["arm"]) == ("matching", "generated")
    assert row["automatic"] == "identity_similarity.same_clip_cosine"
    assert row["spearman"]["n"] == 12
    assert row["spearman"]["value"] == pytest.approx(spearmanr([k % 5 for k in range(12)], values).statistic)
    assert agreement([], document)[1].startswith("The export has no per-item rows")
    assert agreement(items, {"settings": {"seed": 0}})[1].startswith("The run record has no per-clip values")
