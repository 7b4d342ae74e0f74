"""Study results from the database: answer records, rater screening, MOS, recognition, agreement, power.

`build_summary` returns a JSON-ready dict; survey_app.export writes it (and a markdown rendering) for reports.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from survey_app import stats
from survey_app.models import (
    Answer,
    Image,
    Item,
    ItemKind,
    Question,
    Rater,
    Study,
    Trial,
    as_utc,
)
from survey_app.rater_sessions import (
    AUDIO_CHECK_FAILED,
    QUALITY_VALUES,
    RECOGNITION_VALUES,
    TIE,
)

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
CHOICE_KINDS = (ItemKind.LINEUP, ItemKind.MATCHING, ItemKind.PAIRWISE)  # answers that name a face by its slot
AUDIO_CHECK_RULE = "failed the audio check (miscounted the tones): the session ended before any audio trial"
PLANNED_ACCURACY_HALF_WIDTHS = (0.05, 0.1)


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
    arm: str | None  # matching: real | generated; hype: real | generated; pairwise: the prompt (audio | image)
    clip: str | None  # the run's clip id (audio kinds)
    correct: bool | None  # audio checks, matching and hype: whether the answer was right
    left_system: str | None  # pairwise: the run whose face was shown first (left), and second (right)
    right_system: str | None
    chosen_system: str | None  # pairwise: the run whose face was chosen, or "tie"
    exposure_ms: int | None  # timed hype trials: the exposure; None: untimed
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
    images = {
        image_id: _ImageFacts(identity, is_generated, system)
        for image_id, identity, is_generated, system in db.execute(
            select(Image.id, Image.identity, Image.is_generated, Image.system).where(Image.study_id == study.id)
        )
    }
    rows = db.execute(
        select(Answer, Trial, Item, Rater)
        .join(Trial, Trial.id == Answer.trial_id)
        .join(Item, Item.id == Trial.item_id)
        .join(Rater, Rater.id == Answer.rater_id)
        .where(Rater.study_id == study.id)
        .order_by(Rater.id, Trial.position, Answer.question)
    )
    return [_record(answer, trial, item, rater, images) for answer, trial, item, rater in rows]


@dataclass(frozen=True)
class _ImageFacts:
    identity: str
    is_generated: bool
    system: str


def _record(answer: Answer, trial: Trial, item: Item, rater: Rater, images: dict[str, _ImageFacts]) -> AnswerRecord:
    """A lineup or matching answer is correct when the chosen face shows the person of the voice; a hype answer when
    it names what the image is; an audio check when it counts the tones played."""
    is_lineup = item.kind == ItemKind.LINEUP
    pair_trial = item.kind in (*PAIR_RATED_KINDS, ItemKind.ATTENTION)
    options = list(trial.display_image_ids[1:] if item.reference_image_id or is_lineup else trial.display_image_ids)
    chosen = options[int(answer.value) - 1] if answer.value.isdigit() and item.kind in CHOICE_KINDS else None
    correct = None
    if item.kind in (ItemKind.MATCHING, ItemKind.LINEUP):
        correct = images[chosen].identity == item.identity
    elif item.kind == ItemKind.HYPE:
        correct = (answer.value == "generated") == images[trial.display_image_ids[0]].is_generated
    elif item.kind == ItemKind.AUDIO_CHECK:
        correct = answer.value == item.expected_answer
    systems = [images[image_id].system for image_id in options] if item.kind == ItemKind.PAIRWISE else [None, None]
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
        reference_on_left=trial.display_image_ids[0] == item.reference_image_id if pair_trial else None,
        lineup_correct=correct if is_lineup else None,
        changes=answer.changes,
        arm=item.arm,
        clip=item.clip,
        correct=correct,
        left_system=systems[0],
        right_system=systems[1],
        chosen_system=(images[chosen].system if chosen else TIE) if item.kind == ItemKind.PAIRWISE else None,
        exposure_ms=trial.exposure_ms,
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
        "audio_check_rule": AUDIO_CHECK_RULE,
        "audio_check_failed": sum(rater.ended_reason == AUDIO_CHECK_FAILED for rater in raters),
        "audio_check_failed_raters": sorted(
            rater.public_id for rater in raters if rater.ended_reason == AUDIO_CHECK_FAILED
        ),
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
    summary = {
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
            "kind": study.kind.value,
            "design": study.design or {},
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
    kind_sections = {
        "matching": matching_summary(included, study, bootstrap_replicates),
        "hype": hype_summary(included, bootstrap_replicates, study.seed),
        "pairwise": pairwise_summary(included, bootstrap_replicates, study.seed),
    }
    summary |= kind_sections
    raters = summary["raters"]["included"]
    summary["headline"] = headline_rows(summary, raters)
    summary["items"] = item_rows(included)
    return summary


def _proportion(
    records: Sequence[AnswerRecord], hits: Callable[[AnswerRecord], bool], replicates: int, seed: int
) -> dict | None:
    """The share of `records` that `hits` accepts, with its Wilson and rater x item (clip) bootstrap intervals."""
    if not records:
        return None
    values = [float(hits(r)) for r in records]
    count = int(sum(values))
    return {
        "n": len(records),
        "count": count,
        "share": count / len(records),
        "wilson_ci95": stats.wilson_interval(count, len(records)),
        "clustered_bootstrap_ci95": stats.clustered_bootstrap_interval(
            values, [r.rater_id for r in records], [_cluster(r) for r in records], replicates, seed
        ),
        "raters": len({r.rater_id for r in records}),
        "items": len({r.item_id for r in records}),
    }


def _is_correct(record: AnswerRecord) -> bool:
    return bool(record.correct)


def _cluster(record: AnswerRecord) -> str:
    """The item cluster of the bootstrap: the clip (both matching arms of a clip share it), else the item."""
    return record.clip or str(record.item_id)


def matching_summary(records: Sequence[AnswerRecord], study: Study, replicates: int) -> dict | None:
    """Voice -> face matching accuracy per arm against chance 1/N, and the generated - real difference."""
    answers = [r for r in records if r.item_kind == ItemKind.MATCHING]
    if not answers:
        return None
    faces = int((study.design or {}).get("faces", 2))
    chance = 1 / faces
    arms = {}
    for arm in ("real", "generated"):
        arm_answers = [r for r in answers if r.arm == arm]
        figure = _proportion(arm_answers, _is_correct, replicates, study.seed)
        if figure:
            figure["chance"] = chance
            figure["p_value_above_chance"] = stats.binomial_p_above_chance(figure["count"], figure["n"], chance)
            figure["by_split"] = _grouped(
                arm_answers,
                lambda r: r.split,
                lambda group: _proportion(group, _is_correct, replicates, study.seed),
            )
        arms[arm] = figure
    difference = None
    if arms["real"] and arms["generated"]:
        difference = {
            "estimate": arms["generated"]["share"] - arms["real"]["share"],
            "clustered_bootstrap_ci95": stats.clustered_bootstrap_difference(
                [float(bool(r.correct)) for r in answers],
                [r.arm == "generated" for r in answers],
                [r.rater_id for r in answers],
                [_cluster(r) for r in answers],
                replicates,
                study.seed,
            ),
            "meaning": "accuracy with generated faces minus accuracy with real faces (the human baseline)",
        }
    return {
        "faces": faces,
        "chance": chance,
        "arms": arms,
        "difference": difference,
        "power": matching_power(answers, study.test_trials_per_session),
    }


def matching_power(answers: Sequence[AnswerRecord], trials_per_rater: int) -> dict | None:
    """Raters needed per target half-width of an arm's accuracy, from the observed accuracy (binomial SD) and the
    rater ICC of correctness (design effect 1 + (m - 1) ICC, m = one arm's trials per rater)."""
    values = [float(bool(r.correct)) for r in answers]
    accuracy = float(np.mean(values)) if values else 0.0
    if len(values) < 2 or accuracy in (0.0, 1.0):
        return None
    sd = float(np.sqrt(accuracy * (1 - accuracy)))
    icc = stats.rater_icc(values, [r.rater_id for r in answers]) or 0.0
    per_arm = max(1, trials_per_rater // 2)
    plans = [stats.plan_raters(sd, half_width, per_arm, icc) for half_width in PLANNED_ACCURACY_HALF_WIDTHS]
    return {
        "accuracy": accuracy,
        "sd": sd,
        "rater_icc": icc,
        "votes_per_rater": per_arm,
        "plans": [asdict(plan) for plan in plans],
    }


def hype_summary(records: Sequence[AnswerRecord], replicates: int, seed: int) -> dict | None:
    """HYPE-infinity (Zhou et al. 2019) on the untimed trials: the fakes error (generated faces judged real, the
    headline), the reals error and the error rate over all images (50 % = indistinguishable), each with Wilson and
    rater x item bootstrap intervals; the same figures per fixed exposure time (`by_exposure_ms`) when the study has
    timed trials."""
    answers = [r for r in records if r.item_kind == ItemKind.HYPE]
    if not answers:
        return None
    untimed = [r for r in answers if r.exposure_ms is None]
    exposures = sorted({r.exposure_ms for r in answers if r.exposure_ms is not None})
    return _hype_figures(untimed, replicates, seed) | {
        "by_exposure_ms": {
            str(ms): _hype_figures([r for r in answers if r.exposure_ms == ms], replicates, seed) for ms in exposures
        }
    }


def _hype_figures(answers: Sequence[AnswerRecord], replicates: int, seed: int) -> dict:
    return {
        "hype_infinity_error": _proportion(answers, lambda r: not r.correct, replicates, seed),
        "generated_judged_real": _proportion(
            [r for r in answers if r.arm == "generated"], lambda r: r.value == "real", replicates, seed
        ),
        "real_judged_generated": _proportion(
            [r for r in answers if r.arm == "real"], lambda r: r.value == "generated", replicates, seed
        ),
    }


def pairwise_summary(records: Sequence[AnswerRecord], replicates: int, seed: int) -> dict | None:
    """Bradley-Terry scores of the runs (log-strength, mean 0) with rater x clip bootstrap intervals, win rates per
    pair of runs (ties apart), the tie rate and the left/right position bias (share of non-tie picks of the face on
    the left, 0.5 = none; BT is fitted on the runs, not the positions, and positions are drawn at random per trial)."""
    answers = [r for r in records if r.item_kind == ItemKind.PAIRWISE]
    if not answers:
        return None
    systems = sorted({r.left_system for r in answers} | {r.right_system for r in answers})
    index = {name: position for position, name in enumerate(systems)}
    # Per answer, its contribution to wins[i, j] (i beat j): one win, or half each way for a tie.
    contributions = np.zeros((len(answers), len(systems), len(systems)))
    for row, r in enumerate(answers):
        left, right = index[r.left_system], index[r.right_system]
        if r.chosen_system == TIE:
            contributions[row, left, right] = contributions[row, right, left] = 0.5
        else:
            winner = index[r.chosen_system]
            contributions[row, winner, right if winner == left else left] = 1.0
    scores = stats.bradley_terry(contributions.sum(axis=0))
    replicate_scores = [
        stats.bradley_terry(np.tensordot(weight, contributions, axes=1))
        for weights in stats.clustered_bootstrap_weights(
            [r.rater_id for r in answers], [_cluster(r) for r in answers], replicates, seed
        )
        for weight in weights
    ]
    tail = (1 - stats.CONFIDENCE) / 2 * 100
    bounds = np.percentile(np.asarray(replicate_scores), [tail, 100 - tail], axis=0) if replicate_scores else None
    pairs = {}
    for first, second in itertools.combinations(systems, 2):
        meeting = [r for r in answers if {r.left_system, r.right_system} == {first, second}]
        decided = [r for r in meeting if r.chosen_system != TIE]
        wins = sum(r.chosen_system == first for r in decided)
        pairs[f"{first} vs {second}"] = {
            "n": len(meeting),
            "ties": len(meeting) - len(decided),
            "first_wins": wins,
            "first_win_rate": wins / len(decided) if decided else None,
            "wilson_ci95": stats.wilson_interval(wins, len(decided)),
        }
    decided = [r for r in answers if r.chosen_system != TIE]
    left_picks = sum(r.chosen_system == r.left_system for r in decided)
    return {
        "systems": systems,
        "bradley_terry": {
            name: {
                "score": float(scores[index[name]]),
                "clustered_bootstrap_ci95": (float(bounds[0][index[name]]), float(bounds[1][index[name]]))
                if bounds is not None
                else None,
            }
            for name in systems
        },
        "scale": "Bradley-Terry log-strength (natural log, mean 0 over the runs); P(i beats j) = 1 / (1 + exp(s_j - s_i))",
        "pairs": pairs,
        "n": len(answers),
        "ties": {
            "count": len(answers) - len(decided),
            "share": (len(answers) - len(decided)) / len(answers),
            "handling": "half a win each way in Bradley-Terry; left out of the win rates",
        },
        "position_bias": {
            "left_picks": left_picks,
            "n": len(decided),
            "left_share": left_picks / len(decided) if decided else None,
            "wilson_ci95": stats.wilson_interval(left_picks, len(decided)),
            "p_value_two_sided": stats.binomial_p_two_sided(left_picks, len(decided)),
        },
    }


def _headline(kind: str, label: str, figure: dict, raters: int, **fields) -> dict:
    """One row of the contract's `headline` list (HELPER_SETUP contract 2)."""
    row = {
        "kind": kind,
        "label": label,
        "split": None,
        "arm": None,
        "chance": None,
        "unit": "share",
        "interval": CLUSTER_INTERVAL,
        "raters": raters,
    } | fields
    return row | {"estimate": figure["estimate"], "low": figure["low"], "high": figure["high"], "n": figure["n"]}


CLUSTER_INTERVAL = "rater x item cluster bootstrap"


SHARE_INTERVAL = "rater x item cluster bootstrap, widened to Wilson where Wilson is wider"


def _share_row(kind: str, label: str, share: dict, **fields) -> dict:
    """A headline row of a `_proportion` figure. Its interval is the union of the clustered bootstrap's and Wilson's:
    the bootstrap carries the clustering but collapses to a point when every answer agrees (all right, or one
    rater), where Wilson still says how little n answers tell."""
    wilson, clustered = share["wilson_ci95"], share["clustered_bootstrap_ci95"] or share["wilson_ci95"]
    low, high = min(wilson[0], clustered[0]), max(wilson[1], clustered[1])
    figure = {"estimate": share["share"], "low": low, "high": high, "n": share["n"]}
    return _headline(kind, label, figure, share["raters"], interval=SHARE_INTERVAL, **fields)


def _mos_rows(summary: dict) -> list[dict]:
    groups = [(None, summary["mos"]["overall"])] + list(summary["mos"]["by_split"].items())
    return [
        _headline(
            "mos",
            "MOS of generated faces against the real photo (1-5)" + (f", split {split}" if split else ""),
            {
                "estimate": mos["mean"],
                "low": mos["clustered_bootstrap_ci95"][0],
                "high": mos["clustered_bootstrap_ci95"][1],
                "n": mos["n_votes"],
            },
            mos["n_raters"],
            unit="mos",
            arm="generated",
            split=split,
        )
        for split, mos in groups
        if mos and mos["clustered_bootstrap_ci95"]
    ]


def _faces_rows(summary: dict, raters: int) -> list[dict]:
    """The faces study's rows: MOS (overall and per split), the recognition "yes" share, lineup accuracy."""
    rows = _mos_rows(summary)
    recognition = summary["recognition"]["overall"]
    if recognition and recognition["yes"]["wilson_ci95"]:
        yes = recognition["yes"]
        low, high = yes["wilson_ci95"]
        figure = {"estimate": yes["share"], "low": low, "high": high, "n": recognition["n"]}
        rows.append(
            _headline(
                "recognition",
                "Share of 'yes, I would recognise the person'",
                figure,
                raters,
                interval="Wilson",
                arm="generated",
            )
        )
    lineup = summary["lineup"]
    if lineup:
        low, high = lineup["wilson_ci95"]
        figure = {"estimate": lineup["accuracy"], "low": low, "high": high, "n": lineup["n"]}
        rows.append(
            _headline(
                "lineup",
                f"Lineup accuracy (1 of {round(1 / lineup['chance'])})",
                figure,
                raters,
                interval="Wilson",
                chance=lineup["chance"],
                arm="generated",
            )
        )
    return rows


def _matching_rows(matching: dict, raters: int) -> list[dict]:
    """Accuracy per arm (overall and per split) against chance, and the generated - real difference."""
    rows = []
    for arm, figure in matching["arms"].items():
        if not figure:
            continue
        label = f"Voice -> face matching accuracy, {arm} faces (1 of {matching['faces']})"
        rows.append(_share_row("matching", label, figure, arm=arm, chance=matching["chance"]))
        rows += [
            _share_row("matching", f"{label}, split {split}", share, arm=arm, chance=matching["chance"], split=split)
            for split, share in figure["by_split"].items()
            if share
        ]
    difference = matching["difference"]
    if difference and difference["clustered_bootstrap_ci95"]:
        low, high = difference["clustered_bootstrap_ci95"]
        n = sum(figure["n"] for figure in matching["arms"].values() if figure)
        figure = {"estimate": difference["estimate"], "low": low, "high": high, "n": n}
        rows.append(
            _headline(
                "matching", "Matching accuracy, generated minus real faces", figure, raters, arm="generated - real"
            )
        )
    return rows


def _hype_rows(hype: dict) -> list[dict]:
    """HYPE-infinity's three shares, and the same per fixed exposure."""
    conditions = [("HYPE-infinity (untimed)", hype)] + [
        (f"HYPE at {ms} ms", figures) for ms, figures in hype["by_exposure_ms"].items()
    ]
    return [
        _share_row("hype", f"{name}: {label}", figures[key], arm=arm, chance=0.5 if arm is None else None)
        for name, figures in conditions
        for key, label, arm in (
            ("generated_judged_real", "generated faces judged real", "generated"),
            ("hype_infinity_error", "error rate over all images (0.5 = indistinguishable)", None),
            ("real_judged_generated", "real photos judged generated", "real"),
        )
        if figures[key]
    ]


def _bradley_terry_rows(pairwise: dict, raters: int) -> list[dict]:
    return [
        _headline(
            "bradley_terry",
            f"Bradley-Terry score of {name}",
            {
                "estimate": figure["score"],
                "low": figure["clustered_bootstrap_ci95"][0],
                "high": figure["clustered_bootstrap_ci95"][1],
                "n": pairwise["n"],
            },
            raters,
            arm=name,
            unit="score",
            chance=0.0,
        )
        for name, figure in pairwise["bradley_terry"].items()
        if figure["clustered_bootstrap_ci95"]
    ]


def headline_rows(summary: dict, raters: int) -> list[dict]:
    """The study's figures as the contract's `headline` rows, for every kind; `raters`: the included raters."""
    rows = _faces_rows(summary, raters)
    if summary["matching"]:
        rows += _matching_rows(summary["matching"], raters)
    if summary["hype"]:
        rows += _hype_rows(summary["hype"])
    if summary["pairwise"]:
        rows += _bradley_terry_rows(summary["pairwise"], raters)
    return rows


def item_rows(records: Sequence[AnswerRecord]) -> list[dict]:
    """Per-item figures for agreement with automatic metrics (contract 2's `items`): MOS of a test pair, accuracy of
    a lineup or matching item, share judged real of a hype image, and per pairwise item the win rate of each run
    (a tie half a win)."""
    groups: dict[tuple, list[AnswerRecord]] = {}
    for r in records:
        if r.item_kind == ItemKind.TEST and r.question == Question.QUALITY:
            groups.setdefault(("mos", r.item_id, None), []).append(r)
        elif r.item_kind in (ItemKind.LINEUP, ItemKind.MATCHING, ItemKind.HYPE):
            groups.setdefault((r.item_kind.value, r.item_id, r.arm), []).append(r)
        elif r.item_kind == ItemKind.PAIRWISE:
            for system in (r.left_system, r.right_system):
                groups.setdefault(("bradley_terry", r.item_id, system), []).append(r)
    rows = []
    for (kind, _, arm), group in groups.items():
        first = group[0]
        if kind == "mos":
            values = [float(r.value) for r in group]
        elif kind == "hype":
            values = [float(r.value == "real") for r in group]
        elif kind == "bradley_terry":
            values = [0.5 if r.chosen_system == TIE else float(r.chosen_system == arm) for r in group]
        else:
            values = [float(bool(r.correct)) for r in group]
        rows.append(
            {
                "clip": first.clip,
                "split": first.split,
                "identity": first.identity,
                "kind": kind,
                "arm": arm,
                "estimate": float(np.mean(values)),
                "n": len(group),
            }
        )
    return rows
