"""A rater's session: token, balanced least-filled assignment, seeded order, lineup photos drawn per trial, and
answers saved as given and revisable until the rater presses Next."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import random
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    BindParameter,
    Insert,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
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
RATERS, TRIALS, ITEMS, ANSWERS, IMAGES = (model.__table__ for model in (Rater, Trial, Item, Answer, Image))
COUNT_LINEUP_EXPOSURES = (
    update(IMAGES)
    .where(IMAGES.c.id == bindparam("image_id"))
    .values(lineup_exposures=IMAGES.c.lineup_exposures + bindparam("shown"))
)


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


def rater_token(secret_key: bytes, start_nonce: str) -> str:
    """The rater's bearer token for the consent form's one-time `start_nonce`: HMAC(key, nonce), so that the same
    form sent twice (a double click on Start, a retry) gives the same rater, without storing the nonce."""
    digest = hmac.digest(secret_key, b"survey-app rater token:" + start_nonce.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def start_session(
    db: Session, study: Study, identity: PlatformIdentity, user_agent: str, viewport: str | None, token: str
) -> bool:
    """Creates the rater of bearer `token` (stored hashed) and their trials; False when that rater exists already
    (the same consent form sent again), True when created.

    The study row is locked (FOR UPDATE on PostgreSQL; SQLite transactions here all hold the write lock), so two
    raters starting at once never both see the same fill counts, and the same form sent twice at once creates one
    rater. Raters who start together (a study's link posted on a platform) wait for each other here while holding
    server threads, so on PostgreSQL the work that needs no lock (the study's items) is done before it, and the rater
    and trials are written by Core INSERTs.
    """
    seed = secrets.randbelow(2**31)
    items = _study_items(db, study)
    db.execute(select(Study.id).where(Study.id == study.id).with_for_update())
    if db.scalar(select(Rater.id).where(Rater.token_hash == hash_token(token))) is not None:
        return False
    if identity.participant_id and db.scalar(
        select(Rater.id).where(
            Rater.study_id == study.id,
            Rater.platform == identity.platform,
            Rater.platform_pid == identity.participant_id,
        )
    ):
        raise DuplicateParticipant(identity.participant_id)
    rng = random.Random(seed)
    lineups, pairs = _session_items(items, _fill_counts(db, study), study, rng)
    lineup_plan = _lineup_displays(db, study, lineups, rng) if lineups else []
    plan = lineup_plan + [(item, [item.reference_image_id, item.probe_image_id]) for item in pairs]
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
            lineup_trials=len(lineup_plan),
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
    return True


def _study_items(db: Session, study: Study) -> list[Item]:
    """The study's items in a stable order (items never change once the study exists)."""
    return list(db.scalars(select(Item).where(Item.study_id == study.id).order_by(Item.id)))


def _session_items(
    items: Sequence[Item], fill: Mapping[int, int], study: Study, rng: random.Random
) -> tuple[list[Item], list[Item]]:
    """The lineup block (first, so that no face of the pair block has been seen) and the pair block, each shuffled:
    the least-filled test pairs, the attention check, one control of each kind, and as many lineups as test pairs
    (least-filled; their generated faces are not the test pairs')."""
    by_kind: dict[ItemKind, list[Item]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    tests = pick_least_filled(by_kind.get(ItemKind.TEST, []), fill, study.test_trials_per_session, rng)
    pair_block = tests + by_kind.get(ItemKind.ATTENTION, [])
    for control_kind in (ItemKind.CONTROL_SAME, ItemKind.CONTROL_DIFFERENT):
        pair_block += pick_least_filled(by_kind.get(control_kind, []), fill, 1, rng)
    lineup_block = pick_least_filled(by_kind.get(ItemKind.LINEUP, []), fill, len(tests), rng)
    rng.shuffle(pair_block)
    rng.shuffle(lineup_block)
    return lineup_block, pair_block


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


@dataclass
class _PoolPhoto:
    id: str
    exposures: int  # over all raters so far
    shown: int = 0  # in this session


def _lineup_displays(
    db: Session, study: Study, lineups: Sequence[Item], rng: random.Random
) -> list[tuple[Item, list[str]]]:
    """Each lineup's display: its generated face, then one pool photo of its identity (the target) and one of each
    of `lineup_size - 1` other identities (the foils), in random order.

    Target and foil photos are drawn by one rule, so that nothing but the faces tells them apart: from the identity's
    pool, the photo least shown in this session (a rater meets no photo twice while the pool lasts), then least
    shown to all raters (exposures stay balanced), random among ties. Foil identities are those of the target's
    group (when it has enough) least used as foils in this session, random among ties. The exposures are counted on
    the photos."""
    pools: dict[str, list[_PoolPhoto]] = {}
    groups: dict[str, str] = {}
    for image_id, identity, group, exposures in db.execute(
        select(Image.id, Image.identity, Image.identity_group, Image.lineup_exposures)
        .where(Image.study_id == study.id, Image.lineup_pool)
        .order_by(Image.id)
    ):
        pools.setdefault(identity, []).append(_PoolPhoto(image_id, exposures))
        groups[identity] = group
    foil_uses: Counter[str] = Counter()
    displays = []
    for item in lineups:
        others = [identity for identity in pools if identity != item.identity]
        group = groups.get(item.identity)
        same_group = [identity for identity in others if group and groups[identity] == group]
        candidates = same_group if len(same_group) >= study.lineup_size - 1 else others
        ranked = sorted(candidates, key=lambda identity: (foil_uses[identity], rng.random()))
        foils = ranked[: study.lineup_size - 1]
        foil_uses.update(foils)
        options = [_draw_photo(pools[identity], rng) for identity in (item.identity, *foils)]
        rng.shuffle(options)
        displays.append((item, [item.probe_image_id, *options]))
    shown = [{"image_id": photo.id, "shown": photo.shown} for pool in pools.values() for photo in pool if photo.shown]
    if shown:
        db.execute(COUNT_LINEUP_EXPOSURES, shown)
    return displays


def _draw_photo(pool: list[_PoolPhoto], rng: random.Random) -> str:
    photo = min(pool, key=lambda candidate: (candidate.shown, candidate.exposures, rng.random()))
    photo.shown += 1
    photo.exposures += 1
    return photo.id


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
    lineup_trials: int  # the pair block starts at this position

    def starts_a_block(self, kind: ItemKind) -> bool:
        """Whether the current trial (of `kind`) is the first of its task, which has its own instructions."""
        first = 0 if kind == ItemKind.LINEUP else self.lineup_trials
        return self.trials_answered == first


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
    RATERS.c.lineup_trials,
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
# Every save and every Next updates the rater's row while the trial is still the current one: that row's lock
# serializes them, so an answer can never land on a trial after the rater moved past it. Next (advance = 1) moves
# the rater to the following trial, and completes the session after the last one.
LOCK_CURRENT_TRIAL = (
    update(RATERS)
    .where(RATERS.c.id == bindparam("saving_rater_id"), RATERS.c.trials_answered == bindparam("position"))
    .values(
        last_answer_at=bindparam("now", type_=RATERS.c.last_answer_at.type),
        trials_answered=RATERS.c.trials_answered + bindparam("advance"),
        completed_at=case(
            (
                and_(bindparam("advance") == 1, RATERS.c.trials_answered + 1 == RATERS.c.trials_total),
                bindparam("now", type_=RATERS.c.completed_at.type),
            ),
            else_=RATERS.c.completed_at,
        ),
    )
)
ANSWER_SHARED_FIELDS = {  # column: parameter, the same in every row
    "trial_id": "answer_trial_id",
    "rater_id": "answer_rater_id",
    "client_rt_ms": "answer_client_rt_ms",
    "received_at": "now",
}


@functools.cache
def _upsert_answers(dialect_name: str, rows: int) -> Select | Insert:
    """Stores `rows` answers to one trial: new ones inserted, changed ones updated (counting the change), equal ones
    left alone. The rows are a UNION ALL of one-row SELECTs of parameters (unlike a multi-row VALUES, SQLAlchemy
    caches its SQL). On PostgreSQL the rater's row is updated in the same statement (LOCK_CURRENT_TRIAL) and the
    answers are written only if it was, so the statement is atomic without a transaction; it returns how many
    rater rows it updated (0 or 1)."""
    postgres = dialect_name == "postgresql"
    locked = LOCK_CURRENT_TRIAL.returning(RATERS.c.id).cte("locked") if postgres else None

    def parameter(name: str, column: str) -> BindParameter:
        return bindparam(name, type_=ANSWERS.c[column].type)

    columns = [*ANSWER_SHARED_FIELDS, "question", "value"]
    selects = []
    for row in range(rows):
        one_row = select(
            *(parameter(name, column) for column, name in ANSWER_SHARED_FIELDS.items()),
            parameter(f"question_{row}", "question"),
            parameter(f"value_{row}", "value"),
        )
        # SQLite needs a WHERE clause to tell an INSERT ... SELECT from the upsert clause that follows it.
        selects.append(one_row.select_from(locked) if postgres else one_row.where(true()))
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    source = union_all(*selects) if rows > 1 else selects[0]
    upsert = dialect_insert(ANSWERS).from_select(columns, source, include_defaults=False)  # changes: 0 by default
    upsert = upsert.on_conflict_do_update(
        index_elements=[ANSWERS.c.trial_id, ANSWERS.c.question],
        set_={
            "value": upsert.excluded.value,
            "client_rt_ms": upsert.excluded.client_rt_ms,
            "received_at": upsert.excluded.received_at,
            "changes": ANSWERS.c.changes + 1,
        },
        where=ANSWERS.c.value != upsert.excluded.value,
    )
    if not postgres:
        return upsert
    return select(select(func.count()).select_from(locked).scalar_subquery()).add_cte(upsert.cte("upserted"))


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
    advance: bool,
) -> dict[str, str]:
    """Stores the answers to trial `trial_id` and returns the stored value of every submitted question, committing;
    with `advance` (the rater pressed Next) also moves the rater to the next trial.

    `current` is the rater's current trial as `find_rater_and_current_trial` read it in this request. Answers to the
    current trial are saved as they are given and may be changed until Next (the stored value is the last one, the
    row counts the changes). Next needs every question of the trial answered (in this request or before): without,
    the answers it carries are saved and InvalidAnswer is raised. A trial
    the rater has moved past takes no more changes: a retried save or Next that repeats its stored answers gets them
    back, anything else raises TrialNotOpen.
    """
    if current is None or current.id != trial_id:
        return _answers_of_a_past_trial(db, rater, trial_id, submitted, client_rt_ms)
    questions = _validated_questions(current, submitted, client_rt_ms, allow_none=advance)
    values = {question: submitted[question.value] for question in questions}
    incomplete = advance and set(current.answers) | set(values) != set(current.questions)
    advance = advance and not incomplete  # a Next with a question unanswered still saves what it carries
    if not values.items() <= current.answers.items() or advance:
        if not _save(db, rater, current, values, client_rt_ms, advance):
            db.rollback()  # another request of this rater pressed Next meanwhile
            return _answers_of_a_past_trial(db, rater, trial_id, submitted, client_rt_ms)
        db.commit()
    if incomplete:
        raise InvalidAnswer("Please answer every question on this page before going on.")
    return {question.value: value for question, value in values.items()}


def _answers_of_a_past_trial(
    db: Session, rater: RaterRef, trial_id: str, submitted: Mapping[str, str], client_rt_ms: int | None
) -> dict[str, str]:
    answered = find_trial(db, rater, trial_id)
    questions = _validated_questions(answered, submitted, client_rt_ms, allow_none=True)
    if any(answered.answers.get(question) != submitted[question.value] for question in questions):
        raise TrialNotOpen(trial_id)
    return {question.value: answered.answers[question] for question in questions}


def _save(
    db: Session,
    rater: RaterRef,
    trial: TrialView,
    values: Mapping[Question, str],
    client_rt_ms: int | None,
    advance: bool,
) -> bool:
    """Writes `values` (and the Next) if the trial is still the rater's current one; False if it is not."""
    parameters: dict[str, object] = {
        "answer_trial_id": trial.id,
        "answer_rater_id": rater.id,
        "answer_client_rt_ms": client_rt_ms,
        "saving_rater_id": rater.id,
        "position": rater.trials_answered,
        "advance": int(advance),
        "now": utc_now(),
    }
    for row, (question, value) in enumerate(values.items()):
        parameters |= {f"question_{row}": question, f"value_{row}": value}
    if is_postgresql(db):
        if values:
            return db.scalar(_upsert_answers("postgresql", len(values)), parameters) == 1
        return db.execute(LOCK_CURRENT_TRIAL, parameters).rowcount == 1
    if db.execute(LOCK_CURRENT_TRIAL, parameters).rowcount != 1:
        return False
    if values:
        db.execute(_upsert_answers("sqlite", len(values)), parameters)
    return True


def allowed_values(trial: TrialView, question: Question) -> tuple[str, ...]:
    if question == Question.QUALITY:
        return QUALITY_VALUES
    if question == Question.RECOGNITION:
        return RECOGNITION_VALUES
    return tuple(str(slot) for slot in range(1, len(trial.display_image_ids)))


def _validated_questions(
    trial: TrialView, submitted: Mapping[str, str], client_rt_ms: int | None, allow_none: bool = False
) -> list[Question]:
    asked = trial.questions
    unknown = set(submitted) - {question.value for question in asked}
    if unknown or not (submitted or allow_none):
        raise InvalidAnswer("This page sent an answer to a question it does not ask: please reload it.")
    if client_rt_ms is not None and not 0 <= client_rt_ms <= MAX_CLIENT_RT_MS:
        raise InvalidAnswer("This page sent a time we cannot read: please reload it.")
    questions = [question for question in asked if question.value in submitted]
    for question in questions:
        if submitted[question.value] not in allowed_values(trial, question):
            raise InvalidAnswer("Please choose one of the options shown.")
    return questions
