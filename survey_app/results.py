"""Study results from the database: answer records, rater screening, MOS, recognition, agreement, power.

`build_summary` returns a JSON-ready dict; survey_app.export writes it (and a markdown rendering) for reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from survey_app import stats
from survey_app.models import Answer, Image, Item, ItemKind, Question, Rater, Study, Trial, as_utc
from survey_app.rater_sessions import QUALITY_VALUES, RECOGNITION_VALUES

MIN_QUALITY_VARIANCE = 0.1  # P.808's straight-lining threshold on a session's ratings
MIN_RATINGS_FOR_VARIANCE = 5
FAST_ANSWER_MS = 1000
SPEEDER_MEDIAN_MS = 1000  # a page of this study takes a careful rater several seconds
PLANNED_HALF_WIDTHS = (0.1, 0.2, 0.3)
SCREENING_RULES = {  # rule id: the rule as the results state it
    "attention": "attention check answered other than instructed",
    "controls": "failed every control pair (said Yes to a different person and/or No to the same person)",
    "straight_lining": f"variance of quality ratings below {MIN_QUALITY_VARIANCE} over at least "
    f"{MIN_RATINGS_FOR_VARIANCE} ratings (straight-lining, as P.808)",
    "speeding": f"median time from a page's display to its answers below {SPEEDER_MEDIAN_MS} ms (speeding; the "
    "browser's clock, the server's where the browser sent none)",
}
INCOMPLETE_RULE = "did not finish the session (answers of unfinished sessions are never analysed)"
PAIR_RATED_KINDS = (ItemKind.TEST, ItemKind.CONTROL_SAME, ItemKind.CONTROL_DIFFERENT)


@dataclass(frozen=True)
class AnswerRecord:
    rater_id: str
    rater_completed: bool
    trial_id: str
    position: int
    item_id: int
    item_kind: ItemKind
    identity: str
    split: str
    question: Question
    value: str
    reference_on_left: bool | None
    lineup_correct: bool | None
    changes: int
    expected_quality: int | None
    client_rt_ms: int | None
    server_rt_ms: int | None
    received_at: datetime


@dataclass(frozen=True)
class RaterScreening:
    rater_id: str
    completed: bool
    attention_failed: bool
    controls_failed: int
    controls_shown: int
    quality_variance: float | None
    fast_answers: int
    median_rt_ms: float | None

    @property
    def failed_rules(self) -> list[str]:
        """The ids (SCREENING_RULES) of the rules this rater failed."""
        failed = []
        if self.attention_failed:
            failed.append("attention")
        if self.controls_shown and self.controls_failed == self.controls_shown:
            failed.append("controls")
        if self.quality_variance is not None and self.quality_variance < MIN_QUALITY_VARIANCE:
            failed.append("straight_lining")
        if self.median_rt_ms is not None and self.median_rt_ms < SPEEDER_MEDIAN_MS:
            failed.append("speeding")
        return failed

    @property
    def exclusion_reasons(self) -> list[str]:
        return [SCREENING_RULES[rule] for rule in self.failed_rules]


def load_answer_records(db: Session, study: Study) -> list[AnswerRecord]:
    identities = dict(db.execute(select(Image.id, Image.identity).where(Image.study_id == study.id)).all())
    rows = db.execute(
        select(Answer, Trial, Item, Rater)
        .join(Trial, Trial.id == Answer.trial_id)
        .join(Item, Item.id == Trial.item_id)
        .join(Rater, Rater.id == Answer.rater_id)
        .where(Rater.study_id == study.id)
        .order_by(Rater.id, Trial.position, Answer.question)
    )
    return [_record(answer, trial, item, rater, identities) for answer, trial, item, rater in rows]


def _record(answer: Answer, trial: Trial, item: Item, rater: Rater, identities: dict[str, str]) -> AnswerRecord:
    """A lineup answer is correct when the chosen photo shows the person the face was generated from."""
    is_lineup = item.kind == ItemKind.LINEUP
    chosen_image = trial.display_image_ids[int(answer.value)] if is_lineup else None
    return AnswerRecord(
        rater_id=rater.public_id,
        rater_completed=rater.completed_at is not None,
        trial_id=trial.id,
        position=trial.position,
        item_id=item.id,
        item_kind=item.kind,
        identity=item.identity,
        split=item.split,
        question=answer.question,
        value=answer.value,
        reference_on_left=None if is_lineup else trial.display_image_ids[0] == item.reference_image_id,
        lineup_correct=identities.get(chosen_image) == item.identity if is_lineup else None,
        changes=answer.changes,
        expected_quality=item.expected_quality,
        client_rt_ms=answer.client_rt_ms,
        server_rt_ms=_elapsed_ms(trial.shown_at, answer.received_at),
        received_at=answer.received_at,
    )


def _elapsed_ms(start: datetime | None, end: datetime) -> int | None:
    if start is None:
        return None
    return round((as_utc(end) - as_utc(start)).total_seconds() * 1000)


def screen_raters(records: Sequence[AnswerRecord]) -> dict[str, RaterScreening]:
    by_rater: dict[str, list[AnswerRecord]] = {}
    for record in records:
        by_rater.setdefault(record.rater_id, []).append(record)
    return {rater_id: _screen(rater_id, rater_records) for rater_id, rater_records in by_rater.items()}


def _screen(rater_id: str, records: Sequence[AnswerRecord]) -> RaterScreening:
    attention = [r for r in records if r.item_kind == ItemKind.ATTENTION]
    controls = [r for r in records if r.question == Question.RECOGNITION and r.item_kind != ItemKind.TEST]
    failed_controls = [
        r
        for r in controls
        if (r.item_kind == ItemKind.CONTROL_SAME and r.value == "no")
        or (r.item_kind == ItemKind.CONTROL_DIFFERENT and r.value == "yes")
    ]
    ratings = [int(r.value) for r in records if r.question == Question.QUALITY and r.item_kind in PAIR_RATED_KINDS]
    times = [_answer_time_ms(r) for r in records]
    times = [time for time in times if time is not None]
    return RaterScreening(
        rater_id=rater_id,
        completed=records[0].rater_completed,
        attention_failed=any(int(r.value) != r.expected_quality for r in attention),
        controls_failed=len(failed_controls),
        controls_shown=len(controls),
        quality_variance=float(np.var(ratings)) if len(ratings) >= MIN_RATINGS_FOR_VARIANCE else None,
        fast_answers=sum(r.client_rt_ms is not None and r.client_rt_ms < FAST_ANSWER_MS for r in records),
        median_rt_ms=float(np.median(times)) if times else None,
    )


def _answer_time_ms(record: AnswerRecord) -> int | None:
    return record.client_rt_ms if record.client_rt_ms is not None else record.server_rt_ms


def included_records(records: Sequence[AnswerRecord], screening: dict[str, RaterScreening]) -> list[AnswerRecord]:
    """Answers of raters who completed the study and passed screening."""
    return [r for r in records if screening[r.rater_id].completed and not screening[r.rater_id].exclusion_reasons]


def mos_summary(records: Sequence[AnswerRecord], bootstrap_replicates: int, seed: int) -> dict | None:
    votes = [r for r in records if r.question == Question.QUALITY]
    if not votes:
        return None
    scores = [int(r.value) for r in votes]
    return {
        "n_votes": len(votes),
        "n_raters": len({r.rater_id for r in votes}),
        "n_items": len({r.item_id for r in votes}),
        "mean": float(np.mean(scores)),
        "sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
        "t_ci95": stats.t_interval(scores),
        "clustered_bootstrap_ci95": stats.clustered_bootstrap_interval(
            scores, [r.rater_id for r in votes], [r.item_id for r in votes], bootstrap_replicates, seed
        ),
        "distribution": {value: scores.count(int(value)) for value in QUALITY_VALUES},
    }


def recognition_summary(records: Sequence[AnswerRecord]) -> dict | None:
    answers = Counter(r.value for r in records if r.question == Question.RECOGNITION)
    total = sum(answers.values())
    if not total:
        return None
    summary: dict = {"n": total}
    for value in RECOGNITION_VALUES:
        summary[value] = _share(answers[value], total)
    # "Not sure" is not a third outcome of recognition; dropping it is one of the sensitivity views.
    summary["yes_among_sure"] = _share(answers["yes"], answers["yes"] + answers["no"])
    return summary


def _share(count: int, total: int) -> dict:
    share = count / total if total else None
    return {"count": count, "share": share, "wilson_ci95": stats.wilson_interval(count, total)}


def _grouped(records: Sequence[AnswerRecord], key: Callable[[AnswerRecord], str], summarise: Callable) -> dict:
    groups: dict[str, list[AnswerRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return {name: summarise(groups[name]) for name in sorted(groups)}


def lineup_summary(records: Sequence[AnswerRecord], lineup_size: int) -> dict | None:
    choices = [r for r in records if r.question == Question.LINEUP]
    if not choices or not lineup_size:
        return None
    correct = sum(bool(r.lineup_correct) for r in choices)
    chance = 1 / lineup_size
    return {
        "n": len(choices),
        "correct": correct,
        "accuracy": correct / len(choices),
        "wilson_ci95": stats.wilson_interval(correct, len(choices)),
        "chance": chance,
        "p_value_above_chance": stats.binomial_p_above_chance(correct, len(choices), chance),
    }


def agreement_summary(records: Sequence[AnswerRecord]) -> dict:
    """Krippendorff's alpha over the test pairs: quality as ordinal, recognition as nominal data."""
    tests = [r for r in records if r.item_kind == ItemKind.TEST]
    quality = [(r.item_id, r.value) for r in tests if r.question == Question.QUALITY]
    recognition = [(r.item_id, r.value) for r in tests if r.question == Question.RECOGNITION]
    return {
        "quality_ordinal": asdict(stats.krippendorff_alpha(quality, QUALITY_VALUES, ordinal=True)),
        "recognition_nominal": asdict(stats.krippendorff_alpha(recognition, RECOGNITION_VALUES, ordinal=False)),
    }


def power_summary(records: Sequence[AnswerRecord], votes_per_rater: int, half_widths: Sequence[float]) -> dict | None:
    """Raters needed per target MOS half-width, from the observed SD and rater ICC of the test votes."""
    votes = [r for r in records if r.item_kind == ItemKind.TEST and r.question == Question.QUALITY]
    scores = [int(r.value) for r in votes]
    if len(scores) < 2 or np.std(scores) == 0:
        return None
    sd = float(np.std(scores, ddof=1))
    icc = stats.rater_icc(scores, [r.rater_id for r in votes]) or 0.0
    plans = [stats.plan_raters(sd, half_width, votes_per_rater, icc) for half_width in half_widths]
    return {
        "sd": sd,
        "rater_icc": icc,
        "votes_per_rater": votes_per_rater,
        "plans": [asdict(plan) for plan in plans],
    }


def screening_summary(raters: Sequence[Rater], screening: dict[str, RaterScreening]) -> dict:
    """The rules, how many raters each one excluded (a rater can fail several), and who was excluded and why."""
    completed = [s for s in screening.values() if s.completed]
    excluded = [s for s in completed if s.failed_rules]
    return {
        "rules": SCREENING_RULES,
        "incomplete_rule": INCOMPLETE_RULE,
        "incomplete": sum(rater.completed_at is None for rater in raters),
        "excluded_by_rule": {rule: sum(rule in s.failed_rules for s in completed) for rule in SCREENING_RULES},
        "excluded": [
            {"rater_id": s.rater_id, "rules": s.failed_rules, "reasons": s.exclusion_reasons} for s in excluded
        ],
        "fast_answers_under_1s": sum(s.fast_answers for s in screening.values()),
    }


def build_summary(db: Session, study: Study, bootstrap_replicates: int) -> dict:
    records = load_answer_records(db, study)
    screening = screen_raters(records)
    included = included_records(records, screening)
    tests = [r for r in included if r.item_kind == ItemKind.TEST]

    def mos(group: Sequence[AnswerRecord]) -> dict | None:
        return mos_summary(group, bootstrap_replicates, study.seed)

    started = db.scalars(select(Rater).where(Rater.study_id == study.id)).all()
    same_person = [r for r in included if r.item_kind == ItemKind.CONTROL_SAME]
    different_person = [r for r in included if r.item_kind == ItemKind.CONTROL_DIFFERENT]
    return {
        "study": {
            "slug": study.slug,
            "title": study.title,
            "created_at": as_utc(study.created_at).isoformat(),
            "source": study.source,
            "consent_version": study.consent_version,
            "test_trials_per_session": study.test_trials_per_session,
            "quality_scale": "5 Identical, 4 Good, 3 Fair, 2 Poor, 1 Bad (generated image w.r.t. the real one)",
            "recognition_question": "Could you recognise the real person from the generated image? Yes/No/Not sure",
            "bootstrap": f"{bootstrap_replicates} replicates resampling raters and items, seed {study.seed}",
        },
        "raters": {
            "started": len(started),
            "completed": sum(rater.completed_at is not None for rater in started),
            "included": len({r.rater_id for r in included}),
        },
        "screening": screening_summary(started, screening),
        "mos": {
            "overall": mos(tests),
            "by_split": _grouped(tests, lambda r: r.split, mos),
            "by_identity": _grouped(tests, lambda r: r.identity, mos),
        },
        "recognition": {
            "overall": recognition_summary(tests),
            "by_split": _grouped(tests, lambda r: r.split, recognition_summary),
            "by_identity": _grouped(tests, lambda r: r.identity, recognition_summary),
        },
        "controls": {
            "same_person": recognition_summary(same_person),
            "different_person": recognition_summary(different_person),
            "same_person_mos": mos(same_person),
            "different_person_mos": mos(different_person),
        },
        "lineup": lineup_summary(included, study.lineup_size),
        "agreement": agreement_summary(included),
        "power": power_summary(included, study.test_trials_per_session, PLANNED_HALF_WIDTHS),
    }
