"""A rater's browser must learn nothing from the channels around the faces: a bot that plays them stays at chance.

The study has 2 identities and lineups of 2 (the embedded evaluation set's shape), real photos of varied size and
content (noisy PNGs, 16-32 px) and flat generated faces (8 px), so that every channel a bot could read has a signal to
leak unless the app removes it: which photo it has seen before (novelty), where the target sits (position), how
large the download is (file size), and the response headers.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image as PilImage
from sqlalchemy import select

from survey_app.manifest import load_run_input
from survey_app.models import Image, ItemKind, Trial
from survey_app.stats import wilson_interval
from survey_app.study_builder import StudyOptions, create_study
from tests.survey_app.robot import write_synthetic_run

from .conftest import QUESTION, TRIAL_ACTION, open_trial, trial_kind

RATERS = 12
LINEUPS_PER_SESSION = 16
IMAGE_SRC = re.compile(r'<img src="([^"]+)"')
TRIAL_ID = re.compile(r"/trials/([0-9a-f]{32})/")
CONFIDENCE = 0.999  # a chance-level bot fails a 95 % check 1 run in 20, this one 1 in 1000


@pytest.fixture
def bot_study(app, tmp_path: Path) -> str:
    run_dir = write_synthetic_run(tmp_path / "two", ("alice", "bob"), photos_per_identity=60)
    rng = random.Random(5)
    for path in sorted((run_dir / "real").iterdir()):
        side = rng.randrange(16, 33)
        PilImage.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(path)
    for path in sorted((run_dir / "generated").iterdir()):
        PilImage.new("RGB", (8, 8), tuple(rng.randbytes(3))).save(path)  # flat, and no two alike
    options = StudyOptions(
        title="bot", slug="bot-study", seed=11, test_pairs=16, test_trials_per_session=16, lineup_size=2
    )
    with app.extensions["survey_sessions"]() as session:
        create_study(session, load_run_input(run_dir), app.config["SURVEY_IMAGE_STORE"], options)
        session.commit()
    return "bot-study"


def _image(client, url: str) -> tuple[str, int, dict]:
    response = client.get(url)
    assert response.status_code == 200
    headers = {name: value for name, value in response.headers.items() if name != "Date"}
    return hashlib.sha256(response.data).hexdigest(), len(response.data), headers


def test_a_bot_playing_novelty_position_and_file_size_stays_at_chance(app, db, bot_study, start_rater) -> None:
    identities = dict(db.execute(select(Image.id, Image.identity)).all())
    db.commit()
    rng = random.Random(3)
    correct: Counter[str] = Counter()
    trials = 0
    novelty_signals = size_signals = 0
    header_sets = set()
    for _ in range(RATERS):
        client, token, csrf = start_rater(bot_study)
        seen: set[str] = set()
        for _ in range(LINEUPS_PER_SESSION):
            page = open_trial(client, token)
            assert QUESTION.findall(page.text) == ["lineup"]
            probe, *options = [_image(client, url) for url in IMAGE_SRC.findall(page.text)]
            new = [digest not in seen for digest, _, _ in options]
            sizes = [size for _, size, _ in options]
            novelty_signals += len(set(new)) > 1  # some options seen before and some not
            size_signals += len(set(sizes)) > 1
            header_sets.update(frozenset(headers.items()) for _, _, headers in (probe, *options))
            picks = {
                "position": 1,
                "novelty": 1 + rng.choice([slot for slot, fresh in enumerate(new) if fresh] or [0, 1]),
                "file_size": 1 + max(range(len(sizes)), key=lambda slot: (sizes[slot], rng.random())),
            }
            seen.update(digest for digest, _, _ in (probe, *options))
            trial_id = TRIAL_ID.search(TRIAL_ACTION.search(page.text).group(1)).group(1)
            trial = db.get(Trial, trial_id)
            for strategy, slot in picks.items():
                correct[strategy] += identities[trial.display_image_ids[slot]] == trial.item.identity
            db.commit()
            trials += 1
            posted = client.post(
                TRIAL_ACTION.search(page.text).group(1),
                data={"csrf_token": csrf, "lineup": str(picks["novelty"]), "next": "1"},
            )
            assert posted.status_code == 302
    assert novelty_signals == 0  # every photo of every lineup is new to the rater
    assert size_signals == 0  # every image has the same byte length
    assert len(header_sets) == 1  # and the same response headers
    for strategy, hits in correct.items():
        low, high = wilson_interval(hits, trials, CONFIDENCE)
        assert low <= 0.5 <= high, f"{strategy}: {hits}/{trials} correct"


def test_the_pair_pages_of_tests_and_controls_are_the_same_but_for_random_ids(app, bot_study, start_rater) -> None:
    """The HTML of a test pair and of both controls differ only in the trial's random id and the progress; every
    image of the session is new to the rater when it appears (a photo met before would mark a control)."""
    client, token, csrf = start_rater(bot_study)
    seen: Counter[str] = Counter()
    pages: dict[str, set[str]] = {}
    while True:
        page = open_trial(client, token)
        if page.status_code == 302:
            break
        kind = trial_kind(app, page.text)
        for url in IMAGE_SRC.findall(page.text):
            seen[_image(client, url)[0]] += 1
        normalized = re.sub(r"[0-9a-f]{32}", "ID", page.text)
        normalized = re.sub(r"\d+ / \d+|value=\"\d+\"></progress>|Page \d+ of|Finish|Next", "N", normalized)
        pages.setdefault(kind, set()).add(normalized)
        questions = QUESTION.findall(page.text)
        answers = {"quality": "3", "recognition": "not_sure", "lineup": "1"}
        attention = re.search(r"please select (\d)", page.text)
        if attention:
            answers["quality"] = attention.group(1)
        form = {"csrf_token": csrf, "next": "1"} | {question: answers[question] for question in questions}
        assert client.post(TRIAL_ACTION.search(page.text).group(1), data=form).status_code == 302
    assert max(seen.values()) == 1
    pair_pages = pages["test"] | pages["control_same"] | pages["control_different"]
    assert len(pair_pages) == 1
    assert "trial-test" not in next(iter(pair_pages)) and "control" not in next(iter(pair_pages))
    [attention_page] = pages["attention"]
    assert "Attention check" in attention_page


def test_images_carry_no_validators_and_pair_layout_is_fixed(app, db, bot_study, start_rater) -> None:
    client, token, _ = start_rater(bot_study)
    page = open_trial(client, token)
    response = client.get(IMAGE_SRC.findall(page.text)[0])
    assert "ETag" not in response.headers and "Last-Modified" not in response.headers
    assert response.headers["Cache-Control"] == "private, max-age=3600"
    for trial in db.scalars(select(Trial)):
        if trial.item.kind not in (ItemKind.LINEUP,):
            assert trial.display_image_ids == [trial.item.reference_image_id, trial.item.probe_image_id]
