"""The answer protocol: answers saved as given and revisable until the rater presses Next, Next moving the rater on,
all serialized by the rater's row so that no answer lands on a trial the rater has left."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from sqlalchemy import (
    BindParameter,
    Insert,
    Select,
    and_,
    bindparam,
    case,
    func,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from survey_app.audio_check import AUDIO_CHECK_VALUES
from survey_app.db import is_postgresql
from survey_app.models import Question, utc_now
from survey_app.rater_sessions.queries import (
    ANSWERS,
    RATERS,
    RaterRef,
    TrialView,
    find_trial,
)

QUALITY_VALUES = ("1", "2", "3", "4", "5")
RECOGNITION_VALUES = ("yes", "no", "not_sure")
HYPE_VALUES = ("real", "generated")
TIE = "tie"  # pairwise: "about the same"
AUDIO_CHECK_FAILED = "audio_check"  # Rater.ended_reason of a failed audio check
MAX_CLIENT_RT_MS = 24 * 3600 * 1000


class TrialNotOpen(Exception):
    """The trial is not the rater's current one, so new answers to it are refused."""


class InvalidAnswer(ValueError):
    pass


class ClipNotPlayed(Exception):
    """An answer to an audio trial before a play of its clip reached the end (survey_app.playback)."""


class SessionEnded(Exception):
    """The rater's session ended early (a failed audio check): no more answers."""


END_SESSION = (  # only while the trial that ends it is still the rater's current one
    update(RATERS)
    .where(RATERS.c.id == bindparam("ending_rater_id"), RATERS.c.trials_answered == bindparam("position"))
    .values(ended_reason=bindparam("reason"))
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
    back, anything else raises TrialNotOpen. An audio trial takes answers only once its clip has played to the end
    (survey_app.playback; else ClipNotPlayed); Next on an audio check with the wrong count ends the session there
    (Rater.ended_reason), after which every answer raises SessionEnded.
    """
    if rater.ended_reason:
        raise SessionEnded(rater.ended_reason)
    if current is None or current.id != trial_id:
        return _answers_of_a_past_trial(db, rater, trial_id, submitted, client_rt_ms)
    questions = _validated_questions(current, submitted, client_rt_ms, allow_none=advance)
    if current.audio_id and not current.played:
        raise ClipNotPlayed(trial_id)
    values = {question: submitted[question.value] for question in questions}
    incomplete = advance and set(current.answers) | set(values) != set(current.questions)
    advance = advance and not incomplete  # a Next with a question unanswered still saves what it carries
    failed_check = advance and current.expected_answer not in (None, (current.answers | values)[current.questions[0]])
    if failed_check:
        # A wrong audio check ends the session where it is: the rater never moves on, so no later trial (no audio
        # trial) is ever shown. Ended before the answer is saved: no request in between can see a next trial.
        db.execute(
            END_SESSION, {"ending_rater_id": rater.id, "position": rater.trials_answered, "reason": AUDIO_CHECK_FAILED}
        )
        advance = False
    if not values.items() <= current.answers.items() or advance:
        if not _save(db, rater, current, values, client_rt_ms, advance):
            db.rollback()  # another request of this rater pressed Next meanwhile
            return _answers_of_a_past_trial(db, rater, trial_id, submitted, client_rt_ms)
        db.commit()
    elif failed_check:
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
    """The values a question of this trial takes (slot numbers count the faces to choose from, from 1)."""
    if question == Question.QUALITY:
        return QUALITY_VALUES
    if question == Question.RECOGNITION:
        return RECOGNITION_VALUES
    if question == Question.AUDIO_CHECK:
        return AUDIO_CHECK_VALUES
    if question == Question.HYPE:
        return HYPE_VALUES
    options = len(trial.display_image_ids) - (trial.reference_image_id is not None or question == Question.LINEUP)
    slots = tuple(str(slot) for slot in range(1, options + 1))
    return (*slots, TIE) if question == Question.PAIRWISE else slots


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
