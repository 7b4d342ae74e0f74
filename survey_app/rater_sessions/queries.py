"""The rater pages' reads: the token's rater, the current trial and the trial by id, as Core statements built once.

The rater's pages run these on every request: plain statements on the tables, no ORM compilation or identity map, and
SQLAlchemy only looks their compiled form up in its cache.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session

from survey_app.db import is_postgresql
from survey_app.models import (
    Answer,
    Image,
    Item,
    ItemKind,
    Platform,
    Question,
    Rater,
    Trial,
    utc_now,
)

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
QUESTIONS_BY_KIND: dict[ItemKind, tuple[Question, ...]] = {
    ItemKind.TEST: (Question.QUALITY, Question.RECOGNITION),
    ItemKind.CONTROL_SAME: (Question.QUALITY, Question.RECOGNITION),
    ItemKind.CONTROL_DIFFERENT: (Question.QUALITY, Question.RECOGNITION),
    ItemKind.ATTENTION: (Question.QUALITY,),
    ItemKind.LINEUP: (Question.LINEUP,),
    ItemKind.AUDIO_CHECK: (Question.AUDIO_CHECK,),
    ItemKind.MATCHING: (Question.MATCHING,),
    ItemKind.HYPE: (Question.HYPE,),
    ItemKind.PAIRWISE: (Question.PAIRWISE,),
}
FIRST_BLOCK_KINDS = (ItemKind.LINEUP, ItemKind.AUDIO_CHECK)  # a session's first block: lineups or the audio check
RATERS, TRIALS, ITEMS, ANSWERS, IMAGES = (model.__table__ for model in (Rater, Trial, Item, Answer, Image))


class TrialNotFound(Exception):
    """No such trial for this rater (other raters' trials are indistinguishable from missing ones)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class RaterRef:
    """The facts of a rater that the rater's pages need, looked up once per request by the token's hash."""

    id: int
    study_id: int
    platform: Platform
    completion_code: str
    completed: bool
    trials_answered: int  # also the position of the current trial
    trials_total: int
    lineup_trials: int  # the second block (pairs, or an audio study's trials) starts at this position
    ended_reason: str | None  # why the session ended early (e.g. "audio_check"), None while it runs or once completed

    def starts_a_block(self, kind: ItemKind) -> bool:
        """Whether the current trial (of `kind`) is the first of its task, which has its own instructions."""
        first = 0 if kind in FIRST_BLOCK_KINDS else self.lineup_trials
        return self.trials_answered == first


@dataclass(frozen=True)
class TrialView:
    """What the rater's pages need of one trial: its item's kind and public facts, display order, stored answers."""

    id: str
    kind: ItemKind
    display_image_ids: tuple[str, ...]
    reference_image_id: str | None
    expected_quality: int | None
    audio_id: str | None  # the clip the trial plays (audio kinds)
    expected_answer: str | None  # audio checks: the number of tones
    played: bool  # whether a play of the clip reached its end (survey_app.playback); answers wait for it
    exposure_ms: int | None  # timed hype trials: how long the page shows the image
    answers: dict[Question, str]

    @property
    def questions(self) -> tuple[Question, ...]:
        return QUESTIONS_BY_KIND[self.kind]


RATER_COLUMNS = (
    RATERS.c.id,
    RATERS.c.study_id,
    RATERS.c.platform,
    RATERS.c.completion_code,
    RATERS.c.completed_at.is_not(None),
    RATERS.c.trials_answered,
    RATERS.c.trials_total,
    RATERS.c.lineup_trials,
    RATERS.c.ended_reason,
)
TRIAL_COLUMNS = (  # one row per stored answer of the trial (question and value None when it has none)
    TRIALS.c.id,
    ITEMS.c.kind,
    TRIALS.c.display_image_ids,
    ITEMS.c.reference_image_id,
    ITEMS.c.expected_quality,
    ITEMS.c.audio_id,
    ITEMS.c.expected_answer,
    TRIALS.c.played_at.is_not(None),
    TRIALS.c.exposure_ms,
    ANSWERS.c.question,
    ANSWERS.c.value,
)
RATER_BY_TOKEN_HASH = select(*RATER_COLUMNS).where(RATERS.c.token_hash == bindparam("token_hash"))
RATER_AND_CURRENT_TRIAL_BY_TOKEN_HASH = (
    select(*RATER_COLUMNS, *TRIAL_COLUMNS)
    .select_from(
        RATERS.outerjoin(TRIALS, and_(TRIALS.c.rater_id == RATERS.c.id, TRIALS.c.position == RATERS.c.trials_answered))
        .outerjoin(ITEMS, ITEMS.c.id == TRIALS.c.item_id)
        .outerjoin(ANSWERS, ANSWERS.c.trial_id == TRIALS.c.id)
    )
    .where(RATERS.c.token_hash == bindparam("token_hash"))
)
RATER_TRIAL_BY_ID = (
    select(*TRIAL_COLUMNS)
    .join(ITEMS, ITEMS.c.id == TRIALS.c.item_id)
    .outerjoin(ANSWERS, ANSWERS.c.trial_id == TRIALS.c.id)
    .where(TRIALS.c.rater_id == bindparam("rater_id"), TRIALS.c.id == bindparam("trial_id"))
)
MARK_CURRENT_TRIAL_SHOWN = (
    update(TRIALS)
    .where(
        RATERS.c.token_hash == bindparam("token_hash"),
        TRIALS.c.rater_id == RATERS.c.id,
        TRIALS.c.position == RATERS.c.trials_answered,
        TRIALS.c.shown_at.is_(None),
    )
    .values(shown_at=bindparam("now"))
)
# PostgreSQL: one round trip for the trial page; the UPDATE in the WITH clause runs even though nothing reads it.
SHOW_CURRENT_TRIAL = RATER_AND_CURRENT_TRIAL_BY_TOKEN_HASH.add_cte(MARK_CURRENT_TRIAL_SHOWN.cte("shown"))
# The instructions of a task stand between the rater and its first trial: that trial counts as shown from when the
# rater leaves them.
UNMARK_CURRENT_TRIAL_SHOWN = (
    update(TRIALS)
    .where(
        TRIALS.c.rater_id == bindparam("unmark_rater_id"),
        TRIALS.c.position == bindparam("unmark_position"),
        ~TRIALS.c.id.in_(select(ANSWERS.c.trial_id).where(ANSWERS.c.rater_id == bindparam("unmark_rater_id"))),
    )
    .values(shown_at=None)
)


def find_rater(db: Session, token: str) -> RaterRef | None:
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    row = db.execute(RATER_BY_TOKEN_HASH, {"token_hash": hash_token(token)}).first()
    return RaterRef(*row) if row is not None else None


def find_rater_and_current_trial(db: Session, token: str) -> tuple[RaterRef, TrialView | None] | None:
    """The rater and their current trial (None once every trial is answered), in one query."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    return _rater_and_trial(db.execute(RATER_AND_CURRENT_TRIAL_BY_TOKEN_HASH, {"token_hash": hash_token(token)}))


def show_current_trial(db: Session, token: str) -> tuple[RaterRef, TrialView | None] | None:
    """As find_rater_and_current_trial, also recording when the trial was first shown (showing it again changes
    nothing); on PostgreSQL in the same query."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    parameters = {"token_hash": hash_token(token), "now": utc_now()}
    if is_postgresql(db):
        return _rater_and_trial(db.execute(SHOW_CURRENT_TRIAL, parameters))
    db.execute(MARK_CURRENT_TRIAL_SHOWN, parameters)
    return _rater_and_trial(db.execute(RATER_AND_CURRENT_TRIAL_BY_TOKEN_HASH, parameters))


def unmark_current_trial_shown(db: Session, rater: RaterRef) -> None:
    """While the rater reads a task's instructions, its first trial counts as not shown yet (unless answered)."""
    db.execute(UNMARK_CURRENT_TRIAL_SHOWN, {"unmark_rater_id": rater.id, "unmark_position": rater.trials_answered})


def _rater_and_trial(result: Result) -> tuple[RaterRef, TrialView | None] | None:
    rows = result.all()
    if not rows:
        return None
    rater_width = len(RATER_COLUMNS)
    rater = RaterRef(*rows[0][:rater_width])
    trial_rows = [row[rater_width:] for row in rows]
    return rater, (_trial_view(trial_rows) if trial_rows[0][0] is not None else None)


def find_trial(db: Session, rater: RaterRef, trial_id: str) -> TrialView:
    """The rater's trial `trial_id`; another rater's trial raises TrialNotFound as a missing one does."""
    rows = db.execute(RATER_TRIAL_BY_ID, {"trial_id": trial_id, "rater_id": rater.id}).all()
    if not rows:
        raise TrialNotFound(trial_id)
    return _trial_view(rows)


def _trial_view(rows: Sequence[Sequence]) -> TrialView:
    trial_id, kind, display, reference, expected, audio_id, expected_answer, played, exposure_ms, _, _ = rows[0]
    answers = {question: value for *_, question, value in rows if question is not None}
    return TrialView(
        trial_id,
        kind,
        tuple(display),
        reference,
        expected,
        audio_id,
        expected_answer,
        bool(played),
        exposure_ms,
        answers,
    )
