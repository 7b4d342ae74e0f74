"""A rater's session: token, balanced least-filled assignment, seeded order, and idempotent answers."""

from __future__ import annotations

import functools
import hashlib
import random
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session, selectinload

from survey_app.db import is_postgresql
from survey_app.models import (
    Answer,
    Item,
    ItemKind,
    Platform,
    Question,
    Rater,
    Study,
    Trial,
    utc_now,
)

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
QUALITY_VALUES = ("1", "2", "3", "4", "5")
RECOGNITION_VALUES = ("yes", "no", "not_sure")
QUESTIONS_BY_KIND: dict[ItemKind, tuple[Question, ...]] = {
    ItemKind.TEST: (Question.QUALITY, Question.RECOGNITION),
    ItemKind.CONTROL_SAME: (Question.QUALITY, Question.RECOGNITION),
    ItemKind.CONTROL_DIFFERENT: (Question.QUALITY, Question.RECOGNITION),
    ItemKind.ATTENTION: (Question.QUALITY,),
    ItemKind.LINEUP: (Question.LINEUP,),
}
PAIR_KINDS = (ItemKind.TEST, ItemKind.CONTROL_SAME, ItemKind.CONTROL_DIFFERENT, ItemKind.ATTENTION)
MAX_CLIENT_RT_MS = 24 * 3600 * 1000
RATERS, TRIALS, ITEMS, ANSWERS = (model.__table__ for model in (Rater, Trial, Item, Answer))


class DuplicateParticipant(Exception):
    """This platform participant already has a session in this study."""


class TrialNotFound(Exception):
    """No such trial for this rater (other raters' trials are indistinguishable from missing ones)."""


class TrialNotOpen(Exception):
    """The trial is not the rater's current one, so new answers to it are refused."""


class InvalidAnswer(ValueError):
    pass


@dataclass(frozen=True)
class PlatformIdentity:
    platform: Platform
    participant_id: str | None = None
    study_id: str | None = None
    session_id: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Session, study: Study, identity: PlatformIdentity, user_agent: str, viewport: str | None) -> str:
    """Creates the rater and their trials; returns the bearer token (shown once, stored hashed).

    The study row is locked (FOR UPDATE on PostgreSQL; SQLite transactions here all hold the write lock), so two
    raters starting at once never both see the same fill counts. Raters who start together (a study's link posted
    on a platform) wait for each other here while holding server threads, so on PostgreSQL the work that needs no
    lock (the study's items) is done before it, and the rater and trials are written by two Core INSERTs.
    """
    token = secrets.token_urlsafe(32)
    seed = secrets.randbelow(2**31)
    items = _study_items(db, study)
    db.execute(select(Study.id).where(Study.id == study.id).with_for_update())
    if identity.participant_id and db.scalar(
        select(Rater.id).where(
            Rater.study_id == study.id,
            Rater.platform == identity.platform,
            Rater.platform_pid == identity.participant_id,
        )
    ):
        raise DuplicateParticipant(identity.participant_id)
    plan = _session_plan(items, _fill_counts(db, study), study, random.Random(seed))
    rater_id = db.scalar(
        insert(RATERS)
        .values(
            public_id=secrets.token_hex(8),
            study_id=study.id,
            token_hash=hash_token(token),
            seed=seed,
            platform=identity.platform,
            platform_pid=identity.participant_id,
            platform_study_id=identity.study_id,
            platform_session_id=identity.session_id,
            consent_version=study.consent_version,
            completion_code=secrets.token_hex(5).upper(),
            user_agent=user_agent[:300],
            viewport=viewport,
            trials_total=len(plan),
        )
        .returning(RATERS.c.id)
    )
    trials = [
        {
            "id": secrets.token_hex(16),
            "rater_id": rater_id,
            "item_id": item.id,
            "position": position,
            "display_image_ids": display,
        }
        for position, (item, display) in enumerate(plan)
    ]
    db.execute(insert(TRIALS), trials)  # one executemany, not one ORM object per trial
    return token


def _study_items(db: Session, study: Study) -> list[Item]:
    """The study's items with their lineup options, in a stable order (items never change once the study exists)."""
    statement = (
        select(Item).where(Item.study_id == study.id).order_by(Item.id).options(selectinload(Item.lineup_options))
    )
    return list(db.scalars(statement))


def _session_plan(
    items: Sequence[Item], fill: Mapping[int, int], study: Study, rng: random.Random
) -> list[tuple[Item, list[str]]]:
    """Lineup trials first (so the target's pair has not been seen yet), then pair trials, each block shuffled."""
    by_kind: dict[ItemKind, list[Item]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    tests = pick_least_filled(by_kind.get(ItemKind.TEST, []), fill, study.test_trials_per_session, rng)
    pair_block = tests + by_kind.get(ItemKind.ATTENTION, [])
    for control_kind in (ItemKind.CONTROL_SAME, ItemKind.CONTROL_DIFFERENT):
        pair_block += pick_least_filled(by_kind.get(control_kind, []), fill, 1, rng)
    chosen_probes = {item.probe_image_id for item in tests}
    lineup_block = [item for item in by_kind.get(ItemKind.LINEUP, []) if item.probe_image_id in chosen_probes]
    rng.shuffle(pair_block)
    rng.shuffle(lineup_block)
    return [(item, _display_order(item, rng)) for item in lineup_block + pair_block]


def _fill_counts(db: Session, study: Study) -> dict[int, int]:
    """Trials per item in completed sessions and in sessions still young enough to be completed."""
    cutoff = utc_now() - timedelta(minutes=study.session_max_age_minutes)
    rows = db.execute(
        select(Trial.item_id, func.count())
        .join(Rater, Rater.id == Trial.rater_id)
        .where(Rater.study_id == study.id, or_(Rater.completed_at.is_not(None), Rater.consented_at >= cutoff))
        .group_by(Trial.item_id)
    )
    return dict(rows.all())


def pick_least_filled(items: Sequence[Item], fill: Mapping[int, int], count: int, rng: random.Random) -> list[Item]:
    """The `count` least-filled items, random among ties; among equally filled items, unseen identities first."""
    tie_breaks = {item.id: rng.random() for item in items}
    remaining = sorted(items, key=lambda item: (fill.get(item.id, 0), tie_breaks[item.id]))
    chosen: list[Item] = []
    identities: set[str] = set()
    while remaining and len(chosen) < count:
        lowest = fill.get(remaining[0].id, 0)
        level = [item for item in remaining if fill.get(item.id, 0) == lowest]
        pick = next((item for item in level if item.identity not in identities), level[0])
        chosen.append(pick)
        identities.add(pick.identity)
        remaining.remove(pick)
    return chosen


def _display_order(item: Item, rng: random.Random) -> list[str]:
    """Pair trials: reference and probe in random left/right order. Lineups: the probe, then shuffled options."""
    if item.kind == ItemKind.LINEUP:
        options = [option.image_id for option in item.lineup_options]
        rng.shuffle(options)
        return [item.probe_image_id, *options]
    pair = [item.reference_image_id, item.probe_image_id]
    rng.shuffle(pair)
    return pair


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


@dataclass(frozen=True)
class TrialView:
    """What the rater's pages need of one trial: its item's kind and public facts, display order, stored answers."""

    id: str
    kind: ItemKind
    display_image_ids: tuple[str, ...]
    reference_image_id: str | None
    expected_quality: int | None
    answers: dict[Question, str]

    @property
    def questions(self) -> tuple[Question, ...]:
        return QUESTIONS_BY_KIND[self.kind]


# The rater's pages run these on every request. They are plain Core statements on the tables, built once: no ORM
# compilation or identity map, and SQLAlchemy only looks their compiled form up in its cache.
RATER_COLUMNS = (
    RATERS.c.id,
    RATERS.c.study_id,
    RATERS.c.platform,
    RATERS.c.completion_code,
    RATERS.c.completed_at.is_not(None),
    RATERS.c.trials_answered,
    RATERS.c.trials_total,
)
TRIAL_COLUMNS = (  # one row per stored answer of the trial (question and value None when it has none)
    TRIALS.c.id,
    ITEMS.c.kind,
    TRIALS.c.display_image_ids,
    ITEMS.c.reference_image_id,
    ITEMS.c.expected_quality,
    ANSWERS.c.question,
    ANSWERS.c.value,
)
RATER_BY_TOKEN_HASH = select(*RATER_COLUMNS).where(RATERS.c.token_hash == bindparam("token_hash"))
RATER_AND_CURRENT_TRIAL_BY_TOKEN_HASH = (
    select(*RATER_COLUMNS, *TRIAL_COLUMNS)
    .select_from(
        RATERS.outerjoin(
            TRIALS, and_(TRIALS.c.rater_id == RATERS.c.id, TRIALS.c.position == RATERS.c.trials_answered)
        )
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


def _count_answers_on_rater(new_answers: ColumnElement[int]) -> Update:
    """Adds `new_answers` (when there are any) to the rater's answers for the trial at `position`; once they reach
    the trial's `questions`, the rater moves on to the next trial (and completes after the last). Every right-hand
    side reads the row as it was before this update, and on PostgreSQL as the previous save of this rater left it
    (READ COMMITTED re-reads a row whose lock it waited for)."""
    answers = RATERS.c.current_trial_answers + new_answers
    completes_trial = answers >= bindparam("questions")
    next_position = RATERS.c.trials_answered + 1
    now = bindparam("now", type_=RATERS.c.completed_at.type)
    return (
        update(RATERS)
        .where(
            RATERS.c.id == bindparam("saving_rater_id"),
            RATERS.c.trials_answered == bindparam("position"),
            new_answers > 0,
        )
        .values(
            current_trial_answers=case((completes_trial, 0), else_=answers),
            trials_answered=case((completes_trial, next_position), else_=RATERS.c.trials_answered),
            completed_at=case(
                (and_(completes_trial, next_position == RATERS.c.trials_total), now),
                else_=RATERS.c.completed_at,
            ),
        )
    )


COUNT_ANSWERS_ON_RATER = _count_answers_on_rater(bindparam("new_answers"))


ANSWER_SHARED_FIELDS = {  # column: parameter, the same in every row
    "trial_id": "answer_trial_id",
    "rater_id": "answer_rater_id",
    "client_rt_ms": "answer_client_rt_ms",
    "received_at": "now",
}


@functools.cache
def _insert_new_answers(dialect_name: str, rows: int) -> Insert:
    """INSERT of `rows` answers to one trial that skips questions already answered and returns those it stored.
    The rows are a UNION ALL of one-row SELECTs of parameters: unlike a multi-row VALUES, SQLAlchemy caches its SQL."""

    def parameter(name: str, column: str) -> BindParameter:
        return bindparam(name, type_=ANSWERS.c[column].type)

    columns = [*ANSWER_SHARED_FIELDS, "question", "value"]
    selects = [
        select(
            *(parameter(name, column) for column, name in ANSWER_SHARED_FIELDS.items()),
            parameter(f"question_{row}", "question"),
            parameter(f"value_{row}", "value"),
        )
        for row in range(rows)
    ]
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return (
        dialect_insert(ANSWERS)
        .from_select(columns, union_all(*selects) if rows > 1 else selects[0])
        .on_conflict_do_nothing(index_elements=[ANSWERS.c.trial_id, ANSWERS.c.question])
        .returning(ANSWERS.c.question)
    )


@functools.cache
def _save_and_count_new_answers(rows: int) -> Select:
    """PostgreSQL: the insert and the rater's count in one statement, so atomic without a transaction."""
    inserted = _insert_new_answers("postgresql", rows).cte("inserted")
    counted = _count_answers_on_rater(select(func.count()).select_from(inserted).scalar_subquery()).cte("counted")
    return select(inserted.c.question).add_cte(counted)


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
    trial_id, kind, display, reference, expected, _, _ = rows[0]
    answers = {question: value for *_, question, value in rows if question is not None}
    return TrialView(trial_id, kind, tuple(display), reference, expected, answers)


def record_answers(
    db: Session,
    rater: RaterRef,
    current: TrialView | None,
    trial_id: str,
    submitted: Mapping[str, str],
    client_rt_ms: int | None,
) -> dict[str, str]:
    """Stores new answers to trial `trial_id` and returns the stored value of every submitted question, committing.

    `current` is the rater's current trial as `find_rater_and_current_trial` read it in this request. The first
    answer to a question is final: a retried or repeated submit changes nothing and gets the stored value back. New
    answers are taken only for the current trial. Saves of one rater may run at once (the page's script saves each
    question as it is answered): the unique (trial, question) index decides which answer is first, and the count
    on the rater's row moves the rater on exactly once per trial.
    """
    if current is None or current.id != trial_id:
        answered = find_trial(db, rater, trial_id)
        questions = _validated_questions(answered, submitted, client_rt_ms)
        if any(question not in answered.answers for question in questions):
            raise TrialNotOpen(trial_id)
        return {question.value: answered.answers[question] for question in questions}
    questions = _validated_questions(current, submitted, client_rt_ms)
    stored = dict(current.answers)
    new = [question for question in questions if question not in stored]
    if new:
        values = {question: submitted[question.value] for question in new}
        saved = _save_new_answers(db, rater, current, values, client_rt_ms)
        db.commit()
        if len(saved) == len(new):
            stored.update((question, submitted[question.value]) for question in new)
        else:  # another request of this rater stored some of them since `current` was read
            stored = find_trial(db, rater, trial_id).answers
    return {question.value: stored[question] for question in questions}


def _save_new_answers(
    db: Session, rater: RaterRef, trial: TrialView, values: Mapping[Question, str], client_rt_ms: int | None
) -> set[Question]:
    """Inserts the answers that are still new and counts them on the rater's row; returns the questions stored."""
    parameters: dict[str, object] = {
        "answer_trial_id": trial.id,
        "answer_rater_id": rater.id,
        "answer_client_rt_ms": client_rt_ms,
        "saving_rater_id": rater.id,
        "position": rater.trials_answered,
        "questions": len(trial.questions),
        "now": utc_now(),
    }
    for row, (question, value) in enumerate(values.items()):
        parameters |= {f"question_{row}": question, f"value_{row}": value}
    if is_postgresql(db):
        return set(db.scalars(_save_and_count_new_answers(len(values)), parameters))
    saved = set(db.scalars(_insert_new_answers("sqlite", len(values)), parameters))
    if saved:
        db.execute(COUNT_ANSWERS_ON_RATER, parameters | {"new_answers": len(saved)})
    return saved


def allowed_values(trial: TrialView, question: Question) -> tuple[str, ...]:
    if question == Question.QUALITY:
        return QUALITY_VALUES
    if question == Question.RECOGNITION:
        return RECOGNITION_VALUES
    return tuple(str(slot) for slot in range(1, len(trial.display_image_ids)))


def _validated_questions(trial: TrialView, submitted: Mapping[str, str], client_rt_ms: int | None) -> list[Question]:
    asked = trial.questions
    unknown = set(submitted) - {question.value for question in asked}
    if unknown or not submitted:
        raise InvalidAnswer(f"this trial asks {', '.join(question.value for question in asked)}")
    if client_rt_ms is not None and not 0 <= client_rt_ms <= MAX_CLIENT_RT_MS:
        raise InvalidAnswer("rt_ms out of range")
    questions = [question for question in asked if question.value in submitted]
    for question in questions:
        if submitted[question.value] not in allowed_values(trial, question):
            raise InvalidAnswer(f"invalid value for {question.value}")
    return questions
