"""The audio-era study kinds end to end: the audio check, play-to-end on the server, matching, hype and pairwise
studies, driven by simulated raters through `survey-app serve` on loopback, and hostile requests."""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from scipy.stats import kendalltau
from sqlalchemy import select

from survey_app import playback
from survey_app.cli import main
from survey_app.db import create_database_engine, default_database_url
from survey_app.export import export_files
from survey_app.manifest import ManifestError, load_run_input
from survey_app.models import (
    AudioClip,
    Image,
    Item,
    ItemKind,
    Rater,
    Study,
    StudyKind,
    Trial,
)
from survey_app.rater_sessions import QUESTIONS_BY_KIND
from survey_app.results import build_summary
from survey_app.study_kinds import KindOptions
from tests.survey_app.robot import ClipRefused, ServerProcess, rate_kind_study

from .conftest import IDENTITIES, build_kind_study, csrf_from, open_trial, write_run_dir

QUESTION_OF = {kind: questions[0].value for kind, questions in QUESTIONS_BY_KIND.items()}
CLIP_S = 0.2  # the synthetic voices: short, so that simulated raters wait little for play-to-end


def _build(app, runs: list[Path], slug: str, kind_options: KindOptions, **overrides) -> str:
    return build_kind_study(app, runs, slug, kind_options, **overrides)


@pytest.fixture
def audio_run(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path / "audio-run", groups=True, photos_per_identity=4, audio_seconds=CLIP_S)


def _truth(app, trial_id: str) -> dict:
    """The server's facts of a trial: the right slot or count, the systems per slot (tests only)."""
    with app.extensions["survey_sessions"]() as session:
        trial = session.get(Trial, trial_id)
        item = trial.item
        images = {image.id: image for image in session.scalars(select(Image).where(Image.study_id == item.study_id))}
        options = trial.display_image_ids[1:] if item.reference_image_id else trial.display_image_ids
        right = next(
            (str(slot) for slot, image_id in enumerate(options, 1) if images[image_id].identity == item.identity), None
        )
        return {
            "kind": item.kind,
            "arm": item.arm,
            "expected": item.expected_answer,
            "right": right,
            "systems": [images[image_id].system for image_id in options],
            "faces": len(options),
        }


def _server(tmp_path: Path, app_config: dict, monkeypatch) -> ServerProcess:
    monkeypatch.setenv("SURVEY_APP_SECRET_KEY", app_config["SECRET_KEY"])
    server = ServerProcess(tmp_path, app_config["SURVEY_DATABASE_URL"], 1, 8, tmp_path / "server.log")
    server.start()
    return server


def _crowd(server: ServerProcess, slug: str, raters: int, decide_for: Callable[[int], Callable], **kwargs) -> list:
    deadline = time.monotonic() + 240
    runs: list = [None] * raters
    errors: list[Exception] = []

    def one(index: int) -> None:
        try:
            runs[index] = rate_kind_study(server.base_url, slug, deadline, decide_for(index), **kwargs)
        except Exception as error:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(raters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return runs


def test_an_audio_kind_refuses_a_run_without_audio_with_one_clear_error(app, run_dir: Path) -> None:
    with pytest.raises(ManifestError, match="no audio column.*--kind matching plays each clip's speech"):
        _build(app, [run_dir], "no-audio", KindOptions(StudyKind.MATCHING))
    with pytest.raises(ManifestError, match="no clip column.*joins runs on it"):
        _build(app, [run_dir, run_dir], "no-clip", KindOptions(StudyKind.PAIRWISE, prompt="image"))
    with pytest.raises(ManifestError, match="--faces must be between 2 and"):
        _build(
            app,
            [write_run_dir(run_dir.parent / "a", audio_seconds=CLIP_S)],
            "many",
            KindOptions(StudyKind.MATCHING, faces=len(IDENTITIES) + 1),
        )


def test_matching_design_uses_same_group_impostors_and_stores_it(app, audio_run: Path) -> None:
    slug = _build(app, [audio_run], "design", KindOptions(StudyKind.MATCHING, faces=3))
    with app.extensions["survey_sessions"]() as session:
        study = session.scalar(select(Study).where(Study.slug == slug))
        items = session.scalars(select(Item).where(Item.study_id == study.id, Item.kind == ItemKind.MATCHING)).all()
        groups = {
            image.id: (image.identity_group, image.identity)
            for image in session.scalars(select(Image).where(Image.study_id == study.id))
        }
    assert study.design["faces"] == 3 and study.design["items_with_same_group_impostors"] == 12
    assert {item.arm for item in items} == {"real", "generated"} and len(items) == 24
    for item in items:
        faces = [groups[image_id] for image_id in item.option_image_ids]
        assert faces[0][1] == item.identity and len({identity for _, identity in faces}) == 3
        assert len({group for group, _ in faces}) == 1  # impostors of the speaker's group


def test_play_events_and_answers_are_checked_on_the_server(app, audio_run: Path, start_rater, monkeypatch) -> None:
    """Hostile or early requests get a clear 4xx; a play that lasted the clip's length unlocks the answers."""
    slug = _build(app, [audio_run], "plays", KindOptions(StudyKind.MATCHING))
    client, token, csrf = start_rater(slug)
    page = open_trial(client, token)
    action = re.search(r'action="(/r/[^"]+/answers)"', page.text).group(1)
    plays = re.search(r'data-plays-url="([^"]+)"', page.text).group(1)
    truth = _truth(app, action.split("/trials/")[1].split("/")[0])
    json = {"Accept": "application/json"}
    answer = {"csrf_token": csrf, "audio_check": truth["expected"], "rt_ms": "1500"}
    assert client.post(action, data=answer, headers=json).status_code == 409  # not played yet
    for form, status in (
        ({"event": "pause"}, 400),
        ({"event": "play", "volume": "1"}, 400),
        ({"event": "play", "duration_ms": "-5"}, 400),
        ({"event": "play", "duration_ms": "99999999999"}, 400),
        ({"event": "ended"}, 409),  # no play before it
    ):
        response = client.post(plays, data={"csrf_token": csrf} | form, headers=json)
        assert response.status_code == status, (form, response.text)
        assert response.json["error"]
    assert client.post(plays, data={"event": "play"}).status_code == 400  # no CSRF token
    assert client.post(plays.replace(token, "x" * 43), data={"csrf_token": csrf, "event": "play"}).status_code == 404
    assert (
        client.post(plays.replace("/trials/", "/trials/0"), data={"csrf_token": csrf, "event": "play"}).status_code
        == 404
    )
    assert client.post(plays, data={"csrf_token": csrf, "event": "play"}).status_code == 200
    assert client.post(plays, data={"csrf_token": csrf, "event": "ended"}, headers=json).status_code == 409  # too soon
    assert client.post(action, data=answer, headers=json).status_code == 409
    assert client.post(plays, data={"csrf_token": csrf, "event": "play", "duration_ms": "2300"}).status_code == 200
    time.sleep(2.3)
    ended = client.post(plays, data={"csrf_token": csrf, "event": "ended"}, headers=json)
    assert ended.status_code == 200 and ended.json == {"plays": 2, "played": True}
    assert client.post(action, data=answer | {"next": "1"}, headers=json).status_code == 200
    assert client.post(plays, data={"csrf_token": csrf, "event": "play"}).status_code == 409  # a past trial
    monkeypatch.setattr(playback, "MAX_PLAYS_PER_TRIAL", 1)  # the second trial's second play is one too many
    following = re.search(r'data-plays-url="([^"]+)"', open_trial(client, token).text).group(1)
    assert client.post(following, data={"csrf_token": csrf, "event": "play"}).status_code == 200
    assert client.post(following, data={"csrf_token": csrf, "event": "play"}, headers=json).status_code == 429
    other_client, other_token, _ = start_rater(slug)
    assert other_client.get(plays.replace(token, other_token).replace("/plays", "/audio")).status_code == 404
    assert client.get(plays.replace("/plays", "/audio")).headers["Content-Type"] == "audio/wav"


@pytest.mark.slow
def test_simulated_raters_recover_matching_accuracy_and_the_audio_check_screens(
    tmp_path: Path, app, app_config: dict, audio_run: Path, monkeypatch
) -> None:
    """A known population through the real server: with real faces half the raters are always right and half right
    on 2 of their 4 trials (population accuracy 0.75, raters differing: the clustered interval is the honest one),
    with generated faces every rater is right on 2 of 4 (0.5, chance). Each arm's intervals hold the true value, the
    arm difference's holds -0.25; a rater who miscounts the tones sees no audio trial and is reported; an answer
    before the clip ended is refused."""
    slug = _build(app, [audio_run], "crowd", KindOptions(StudyKind.MATCHING))
    right_per_arm = {"real": (4, 2), "generated": (2, 2)}  # trials answered right of 4, by rater parity
    true_accuracy = {"real": 0.75, "generated": 0.5}
    server = _server(tmp_path, app_config, monkeypatch)
    try:

        def decide_for(index: int) -> Callable:
            answered = {"real": 0, "generated": 0}

            def decide(trial_id: str, question: str, html: str) -> str:
                truth = _truth(app, trial_id)
                if question == "audio_check":
                    return truth["expected"] if index else str(7 - int(truth["expected"]))  # rater 0 fails
                answered[truth["arm"]] += 1
                right = answered[truth["arm"]] <= right_per_arm[truth["arm"]][index % 2]
                wrong = next(str(slot) for slot in range(1, truth["faces"] + 1) if str(slot) != truth["right"])
                return truth["right"] if right else wrong

            return decide

        runs = _crowd(server, slug, 17, decide_for)
        with pytest.raises(ClipRefused):
            rate_kind_study(server.base_url, slug, time.monotonic() + 60, decide_for(1), play=False)
    finally:
        server.stop()
    assert not runs[0].completed and len(runs[0].acknowledged) == 1 and all(run.completed for run in runs[1:])
    with app.extensions["survey_sessions"]() as session:
        failed = session.scalar(select(Rater).where(Rater.ended_reason.is_not(None)))
        audio_trials_shown = session.scalars(
            select(Trial.shown_at).join(Item).where(Trial.rater_id == failed.id, Item.kind == ItemKind.MATCHING)
        ).all()
        summary = json.loads(
            export_files(session, session.scalar(select(Study).where(Study.slug == slug)), 1000)["results_summary.json"]
        )
    assert audio_trials_shown and all(shown is None for shown in audio_trials_shown)
    assert summary["screening"]["audio_check_failed"] == 1 and summary["raters"]["included"] == 16
    for arm, true_share in true_accuracy.items():
        figure = summary["matching"]["arms"][arm]
        print(
            f"matching {arm}: {figure['share']:.3f} (true {true_share}, n {figure['n']}, {figure['raters']} raters) "
            f"Wilson {_rounded(figure['wilson_ci95'])} rater x clip bootstrap {_rounded(figure['clustered_bootstrap_ci95'])}"
        )
        assert figure["n"] == 64 and figure["share"] == true_share
        for bounds in (figure["wilson_ci95"], figure["clustered_bootstrap_ci95"]):
            assert bounds[0] < true_share < bounds[1]
    difference = summary["matching"]["difference"]
    print(f"difference {difference['estimate']:.3f} {_rounded(difference['clustered_bootstrap_ci95'])}")
    assert difference["clustered_bootstrap_ci95"][0] < -0.25 < difference["clustered_bootstrap_ci95"][1]
    real = summary["matching"]["arms"]["real"]
    assert real["clustered_bootstrap_ci95"][1] - real["clustered_bootstrap_ci95"][0] > (
        real["wilson_ci95"][1] - real["wilson_ci95"][0]
    )  # raters differ: clustering widens the interval
    assert {row["kind"] for row in summary["headline"]} == {"matching"}
    assert {(row["kind"], row["arm"]) for row in summary["items"]} == {("matching", "real"), ("matching", "generated")}


def _rounded(bounds) -> list[float]:
    return [round(bound, 3) for bound in bounds]


def test_simulated_raters_recover_a_bradley_terry_order(tmp_path: Path, app, app_config: dict, monkeypatch) -> None:
    """Three runs of known strength (log 0, 0.8, 1.6), image-prompted, 24 raters x 12 comparisons through the real
    server: the Bradley-Terry order is the true one (Kendall tau >= 0.9) and position bias is near none."""
    runs = [
        write_run_dir(tmp_path / f"system{index}", photos_per_identity=4, audio_seconds=CLIP_S, generated_shift=index)
        for index in range(3)
    ]
    slug = _build(app, runs, "bt-order", KindOptions(StudyKind.PAIRWISE, prompt="image"), test_trials_per_session=12)
    strength = {"system0": 0.0, "system1": 0.8, "system2": 1.6}
    server = _server(tmp_path, app_config, monkeypatch)
    try:

        def decide_for(index: int) -> Callable:
            rng = random.Random(100 + index)

            def decide(trial_id: str, question: str, html: str) -> str:
                first, second = _truth(app, trial_id)["systems"]
                if rng.random() < 0.1:
                    return "tie"
                p_first = 1 / (1 + math.exp(strength[second] - strength[first]))
                return "1" if rng.random() < p_first else "2"

            return decide

        _crowd(server, slug, 24, decide_for)
    finally:
        server.stop()
    with app.extensions["survey_sessions"]() as session:
        summary = json.loads(
            export_files(session, session.scalar(select(Study).where(Study.slug == slug)), 500)["results_summary.json"]
        )
    scores = summary["pairwise"]["bradley_terry"]
    tau = kendalltau([strength[name] for name in sorted(scores)], [scores[name]["score"] for name in sorted(scores)])
    print(
        "BT",
        {name: round(figure["score"], 3) for name, figure in scores.items()},
        "tau",
        tau.statistic,
        "ties",
        summary["pairwise"]["ties"]["share"],
        "left",
        summary["pairwise"]["position_bias"]["left_share"],
    )
    assert tau.statistic >= 0.9
    assert summary["pairwise"]["ties"]["count"] > 0
    assert {row["arm"] for row in summary["headline"]} == set(strength)


def test_hype_trial_page_and_answers(app, audio_run: Path, start_rater, complete_session) -> None:
    slug = _build(app, [audio_run], "hype", KindOptions(StudyKind.HYPE))
    client, token, csrf = start_rater(slug)
    page = open_trial(client, token)
    assert "Is this a real photo" in page.text and "data-plays-url" not in page.text
    action = re.search(r'action="(/r/[^"]+/answers)"', page.text).group(1)
    assert client.post(action, data={"csrf_token": csrf, "hype": "maybe"}).status_code == 400
    assert (
        client.post(action.replace("/answers", "/plays"), data={"csrf_token": csrf, "event": "play"}).status_code == 404
    )  # no audio on this trial
    assert csrf_from(page.text)


def test_faces_study_summary_has_the_contract_headline_and_items(db, study, start_rater, complete_session) -> None:
    """Contract 2 holds for the original kind too: MOS, recognition and lineup rows; per-item MOS and lineup rows."""
    for _ in range(3):
        complete_session(*start_rater(study))
    summary = json.loads(export_files(db, db.scalar(select(Study)), 200)["results_summary.json"])
    kinds = {row["kind"] for row in summary["headline"]}
    assert kinds == {"mos", "recognition", "lineup"}
    keys = {"kind", "label", "split", "arm", "estimate", "low", "high", "interval", "n", "raters", "chance", "unit"}
    for row in summary["headline"]:
        assert set(row) == keys and row["low"] - 1e-9 <= row["estimate"] <= row["high"] + 1e-9 and row["raters"] == 3
    mos = next(row for row in summary["headline"] if row["kind"] == "mos")
    assert mos["unit"] == "mos" and mos["estimate"] == summary["mos"]["overall"]["mean"]
    assert {row["kind"] for row in summary["items"]} == {"mos", "lineup"}
    assert all(set(row) == {"clip", "split", "identity", "kind", "arm", "estimate", "n"} for row in summary["items"])
    assert sum(row["n"] for row in summary["items"] if row["kind"] == "mos") == summary["mos"]["overall"]["n_votes"]


def _cli(tmp_path: Path, *args: str):
    return CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), *args])


def test_create_study_kinds_from_the_command_line(tmp_path: Path, audio_run: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    second = write_run_dir(
        tmp_path / "run-b", groups=True, photos_per_identity=4, audio_seconds=CLIP_S, generated_shift=3
    )
    for args, expected in (
        (["--kind", "matching", "--faces", "3"], "study m-cli (matching): 12 matching items, 4 other items"),
        (["--kind", "hype"], "study h-cli (hype): 12 hype items, 0 other items"),
        (["--kind", "pairwise", "--run", str(second), "--prompt", "image"], "study p-cli (pairwise): 6 pairwise"),
    ):
        slug = f"{args[1][0]}-cli"
        relative = os.path.relpath(audio_run)  # "audio-run", as a user types it: relative to the working folder
        result = _cli(tmp_path, "create-study", "--run", relative, "--slug", slug, "--pairs", "6", *args)
        assert result.exit_code == 0, result.output
        assert expected in result.output
        assert len(list((tmp_path / "data" / "images").glob("*.wav"))) >= 4
        exported = _cli(
            tmp_path, "export", "--study", slug, "--out", str(tmp_path / slug), "--bootstrap-replicates", "50"
        )
        assert exported.exit_code == 0, exported.output
        assert json.loads((tmp_path / slug / "results_summary.json").read_text())["study"]["kind"] == args[1]
    engine = create_database_engine(default_database_url(tmp_path / "data"))
    with engine.connect() as connection:
        consent = dict(connection.execute(select(Study.slug, Study.consent_text)).all())
    engine.dispose()
    assert "recordings of people's voices, each with several faces" in consent["m-cli"]  # each kind says what it does
    assert "some real photographs and some generated" in consent["h-cli"]


def test_create_study_refuses_bad_kind_options_with_one_clear_error(
    tmp_path: Path, run_dir: Path, audio_run: Path
) -> None:
    for args, message in (
        (["--run", str(run_dir), "--kind", "matching"], "has no audio column"),
        (
            ["--run", str(run_dir), "--run", str(run_dir), "--kind", "pairwise", "--prompt", "audio"],
            "has no clip column",
        ),
        (["--run", str(audio_run), "--kind", "pairwise"], "needs two or more --run folders"),
        (["--run", str(audio_run), "--run", str(audio_run)], "--kind faces takes one --run"),
        (["--run", str(audio_run), "--run", str(audio_run), "--kind", "hype"], "--kind hype takes one --run"),
        (["--run", str(audio_run), "--kind", "matching", "--faces", "1"], "--faces must be between 2 and"),
        (["--run", str(audio_run), "--kind", "voices"], "Invalid value for '--kind'"),
        (
            ["--run", str(audio_run), "--kind", "hype", "--lineup-size", "2"],
            "--lineup-size is an option of --kind faces",
        ),
        (["--run", str(audio_run), "--kind", "pairwise", "--prompt", "smell"], "Invalid value for '--prompt'"),
    ):
        result = _cli(tmp_path, "create-study", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_unreadable_or_duplicate_audio_rows_are_refused(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path / "run", audio_seconds=CLIP_S)
    rows = (run / "pairs.csv").read_text().splitlines()
    audio_path = run / rows[1].split(",")[-1]
    audio_path.write_bytes(b"not audio")
    with pytest.raises(ManifestError, match="is not a readable audio file"):
        load_run_input(run)
    (run / "pairs.csv").write_text("\n".join([rows[0], rows[2], rows[2]]) + "\n")
    with pytest.raises(ManifestError, match="appears on more than one row"):
        load_run_input(run)
    (run / "pairs.csv").write_text("\n".join([rows[0], rows[2].replace("audio/", "/abs/audio/")]) + "\n")
    with pytest.raises(ManifestError, match="must be relative"):
        load_run_input(run)


def test_ogg_voices_are_stored_as_wav_of_the_clip_length(app, tmp_path: Path) -> None:
    """evalkit writes Ogg/Vorbis; the study stores 16 kHz WAV under random ids, with the duration the server uses."""
    run = write_run_dir(tmp_path / "ogg-run", photos_per_identity=4, audio_seconds=0.5, audio_format="ogg")
    slug = _build(app, [run], "ogg-voices", KindOptions(StudyKind.MATCHING))
    with app.extensions["survey_sessions"]() as session:
        clips = session.scalars(select(AudioClip).join(Study).where(Study.slug == slug)).all()
    voices = [clip for clip in clips if clip.identity]
    checks = [clip for clip in clips if not clip.identity]
    assert voices and all(abs(clip.duration_s - 0.5) < 0.01 for clip in voices)
    assert len(checks) == 4 and len({clip.duration_s for clip in checks}) == 1  # the count is not in the length
    for clip in clips:
        info = soundfile.info(str(app.config["SURVEY_IMAGE_STORE"] / f"{clip.id}.wav"))
        assert info.samplerate == 16000 and info.channels == 1 and info.format == "WAV"
    for clip in voices:  # every voice at the same level, -26 dBFS RMS (the inputs are at -17 dBFS)
        samples, _ = soundfile.read(str(app.config["SURVEY_IMAGE_STORE"] / f"{clip.id}.wav"))
        assert abs(20 * np.log10(np.sqrt(np.mean(samples**2))) + 26) < 0.2


def test_timed_hype_trials_are_balanced_and_reported_per_exposure(
    app, audio_run: Path, start_rater, complete_session
) -> None:
    """--exposures-ms 250,500: each rater's trials of each arm take untimed, 250 and 500 ms in turn; HYPE-infinity
    uses the untimed ones and each exposure has its own figures."""
    slug = _build(
        app, [audio_run], "timed", KindOptions(StudyKind.HYPE, exposures_ms=(500, 250)), test_trials_per_session=12
    )

    def judge(kind: str, questions: list[str], html: str) -> dict[str, str]:
        return {"hype": "real"}

    for _ in range(3):
        client, token, csrf = start_rater(slug)
        page = open_trial(client, token)
        if "data-exposure-ms" in page.text:
            assert "Show the face" in page.text
        complete_session(client, token, csrf, judge)
    with app.extensions["survey_sessions"]() as session:
        study = session.scalar(select(Study).where(Study.slug == slug))
        rows = session.execute(select(Trial.rater_id, Item.arm, Trial.exposure_ms).join(Item)).all()
        summary = json.loads(export_files(session, study, 200)["results_summary.json"])
    assert study.design["exposures_ms"] == [None, 250, 500]
    for rater_id in {row[0] for row in rows}:
        for arm in ("real", "generated"):
            exposures = [row[2] for row in rows if row[0] == rater_id and row[1] == arm]
            assert sorted(exposures, key=str) == sorted([None, 250, 500] * 2, key=str)
    hype = summary["hype"]
    assert hype["generated_judged_real"]["share"] == 1.0 and hype["generated_judged_real"]["n"] == 6
    assert set(hype["by_exposure_ms"]) == {"250", "500"}
    labels = [row["label"] for row in summary["headline"]]
    assert "HYPE at 250 ms: generated faces judged real" in labels
    assert "HYPE-infinity (untimed): generated faces judged real" in labels


def test_exposures_belong_to_hype_and_stay_in_range(tmp_path: Path, audio_run: Path) -> None:
    for args, message in (
        (["--kind", "matching", "--exposures-ms", "250"], "--exposures-ms is an option of --kind hype"),
        (["--kind", "hype", "--exposures-ms", "5"], "--exposures-ms takes times from 50 to 10000 ms"),
        (["--kind", "hype", "--exposures-ms", "fast"], "--exposures-ms takes whole milliseconds"),
    ):
        result = _cli(tmp_path, "create-study", "--run", str(audio_run), *args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_an_audio_prompted_pairwise_session(app, tmp_path: Path, start_rater) -> None:
    """--prompt audio: the audio check first, then pairs of two runs' faces under a voice that must play to the end;
    a tie is an answer; the summary counts it as half a win each way."""
    runs = [
        write_run_dir(tmp_path / name, photos_per_identity=2, audio_seconds=CLIP_S, generated_shift=shift)
        for name, shift in (("model-a", 0), ("model-b", 9))
    ]
    slug = _build(app, runs, "voices-ab", KindOptions(StudyKind.PAIRWISE, prompt="audio"), test_trials_per_session=2)
    client, token, csrf = start_rater(slug)
    json_reply = {"Accept": "application/json"}
    kinds = []
    while True:
        page = open_trial(client, token)
        if page.status_code == 302:
            break
        action = re.search(r'action="(/r/[^"]+/answers)"', page.text).group(1)
        truth = _truth(app, action.split("/trials/")[1].split("/")[0])
        kinds.append(truth["kind"])
        plays = re.search(r'data-plays-url="([^"]+)"', page.text).group(1)
        client.post(plays, data={"csrf_token": csrf, "event": "play"})
        time.sleep(2.3 if truth["kind"] == ItemKind.AUDIO_CHECK else CLIP_S)
        assert client.post(plays, data={"csrf_token": csrf, "event": "ended"}).json["played"]
        value = truth["expected"] if truth["kind"] == ItemKind.AUDIO_CHECK else "tie"
        if truth["kind"] == ItemKind.PAIRWISE:
            assert "Which face fits the voice better?" in page.text and "About the same" in page.text
            assert (
                client.post(action, data={"csrf_token": csrf, "pairwise": "3"}, headers=json_reply).status_code == 400
            )
        answer = {"csrf_token": csrf, "next": "1", "rt_ms": "2000", str(QUESTION_OF[truth["kind"]]): value}
        assert client.post(action, data=answer, headers=json_reply).status_code == 200
    assert kinds == [ItemKind.AUDIO_CHECK] * 2 + [ItemKind.PAIRWISE] * 2
    with app.extensions["survey_sessions"]() as session:
        summary = build_summary(session, session.scalar(select(Study).where(Study.slug == slug)), 100)
    pairwise = summary["pairwise"]
    assert pairwise["ties"]["count"] == 2 and pairwise["pairs"]["model-a vs model-b"]["first_win_rate"] is None
    assert abs(pairwise["bradley_terry"]["model-a"]["score"]) < 1e-6  # two ties: equal strengths
