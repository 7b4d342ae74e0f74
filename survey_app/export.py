"""CSV/JSON export with a codebook, and the results summary (JSON + markdown) that a report can include.

Files written by `write_export` (and served to the admin one by one):
  answers.csv        one row per answer (long format), raters by opaque id only
  raters.csv         one row per rater: platform ids, consent, screening; kept apart from the answers
  codebook.json      what every column of the two CSVs means and which values it takes
  export.json        {"codebook", "raters", "answers"} in one document
  results_summary.json / results_summary.md   the analysis (survey_app.results.build_summary)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from survey_app.models import Rater, Study, as_utc
from survey_app.results import (
    AnswerRecord,
    RaterScreening,
    build_summary,
    load_answer_records,
    screen_raters,
)

ANSWER_COLUMNS = {
    "rater_id": "opaque rater id (raters.csv links it to platform ids)",
    "trial_id": "opaque id of one showing of one item to one rater",
    "position": "0-based position of the trial in the rater's randomised order",
    "item_id": "stimulus id; the same item is shown to several raters",
    "item_kind": "test (real vs generated) | control_same (real vs other photo of the same person) | "
    "control_different (real vs a different person) | attention (instructed response) | lineup (generated face "
    "vs one photo of its person and of N-1 others, drawn per trial) | audio_check (count the tones) | matching "
    "(a voice and N faces: pick the speaker's) | hype (one image: real or generated?) | pairwise (two runs' faces "
    "of one clip: which fits the voice / photo better, or tie)",
    "identity": "person id from the manifest",
    "split": "data split from the manifest",
    "question": "quality | recognition | lineup | audio_check | matching | hype | pairwise",
    "value": "quality: 1 Bad .. 5 Identical; recognition: yes | no | not_sure; lineup, matching: chosen slot 1..N; "
    "audio_check: tones counted 1..6; hype: real | generated; pairwise: chosen slot 1 | 2, or tie",
    "reference_on_left": "pair trials: true when the baseline photo was shown on the left (always, since schema "
    "revision 0005 fixed the layout: baseline left, image to judge right)",
    "lineup_correct": "lineup trials: true when the chosen photo shows the person the face was generated from",
    "changes": "times the rater changed this answer before pressing Next (value is the last one given)",
    "expected_quality": "attention trials: the value the question instructed",
    "client_rt_ms": "milliseconds from page display to this (last) answer, measured in the browser (empty without JS)",
    "server_rt_ms": "milliseconds from the server first serving the trial to storing this (last) answer",
    "received_at": "UTC time the server stored the answer's value (ISO 8601)",
    "arm": "matching: real | generated (the faces shown); hype: real | generated (the image); pairwise: the prompt, "
    "audio | image",
    "clip": "the run's clip id (pairs.csv `clip`) of audio-kind items",
    "correct": "audio_check, matching, lineup and hype answers: true when right",
    "left_system": "pairwise: the run whose face was shown first (left)",
    "right_system": "pairwise: the run whose face was shown second (right)",
    "chosen_system": "pairwise: the run whose face was chosen, or tie",
    "exposure_ms": "timed hype trials: how long the image was shown (ms, after a 3-2-1 countdown, then masked); "
    "empty: untimed",
    "rater_excluded": "true when the rater failed screening (see results_summary.json)",
}
RATER_COLUMNS = {
    "rater_id": "opaque rater id",
    "platform": "direct | prolific | mturk",
    "platform_pid": "PROLIFIC_PID or MTurk workerId (personal data: keep apart from answers)",
    "platform_study_id": "Prolific STUDY_ID or MTurk hitId",
    "platform_session_id": "Prolific SESSION_ID or MTurk assignmentId",
    "consent_version": "version of the consent text the rater agreed to",
    "consented_at": "UTC time of consent",
    "completed_at": "UTC time the last answer was stored; empty if unfinished",
    "user_agent": "browser user agent",
    "viewport": "browser window size at consent, WIDTHxHEIGHT CSS pixels",
    "attention_failed": "true when the attention check was answered other than instructed",
    "controls_failed": "control pairs answered wrongly (No to same person, Yes to different person)",
    "controls_shown": "control pairs answered",
    "quality_variance": "variance of the rater's quality ratings on pair trials",
    "fast_answers": "answers given under 1 s after display (client clock)",
    "median_rt_ms": "median time from a page's display to its answers (client clock, else server clock)",
    "exclusion_reasons": "screening rules failed, separated by '; ' (empty: included)",
    "ended_reason": "why the session ended early: audio_check (the tones were miscounted); empty otherwise",
}
CODEBOOK = {"answers.csv": ANSWER_COLUMNS, "raters.csv": RATER_COLUMNS}


def answer_rows(records: Sequence[AnswerRecord], screening: dict[str, RaterScreening]) -> list[dict]:
    rows = []
    for record in records:
        row = {column: getattr(record, column, None) for column in ANSWER_COLUMNS}
        row["item_kind"] = record.item_kind.value
        row["question"] = record.question.value
        row["received_at"] = as_utc(record.received_at).isoformat()
        row["rater_excluded"] = bool(screening[record.rater_id].exclusion_reasons)
        rows.append(row)
    return rows


def rater_rows(db: Session, study: Study, screening: dict[str, RaterScreening]) -> list[dict]:
    rows = []
    for rater in db.scalars(select(Rater).where(Rater.study_id == study.id).order_by(Rater.id)):
        screen = screening.get(rater.public_id)
        rows.append(
            {
                "rater_id": rater.public_id,
                "platform": rater.platform.value,
                "platform_pid": rater.platform_pid,
                "platform_study_id": rater.platform_study_id,
                "platform_session_id": rater.platform_session_id,
                "consent_version": rater.consent_version,
                "consented_at": as_utc(rater.consented_at).isoformat(),
                "completed_at": as_utc(rater.completed_at).isoformat() if rater.completed_at else None,
                "user_agent": rater.user_agent,
                "viewport": rater.viewport,
                "attention_failed": screen.attention_failed if screen else None,
                "controls_failed": screen.controls_failed if screen else None,
                "controls_shown": screen.controls_shown if screen else None,
                "quality_variance": screen.quality_variance if screen else None,
                "fast_answers": screen.fast_answers if screen else None,
                "median_rt_ms": screen.median_rt_ms if screen else None,
                "exclusion_reasons": "; ".join(screen.exclusion_reasons) if screen else "",
                "ended_reason": rater.ended_reason,
            }
        )
    return rows


def to_csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: "" if row[column] is None else row[column] for column in columns})
    return buffer.getvalue()


def export_files(db: Session, study: Study, bootstrap_replicates: int) -> dict[str, str]:
    """Every export file's name -> text."""
    records = load_answer_records(db, study)
    screening = screen_raters(records)
    answers = answer_rows(records, screening)
    raters = rater_rows(db, study, screening)
    summary = build_summary(db, study, bootstrap_replicates)
    return {
        "answers.csv": to_csv(answers, list(ANSWER_COLUMNS)),
        "raters.csv": to_csv(raters, list(RATER_COLUMNS)),
        "codebook.json": json.dumps(CODEBOOK, indent=2),
        "export.json": json.dumps({"codebook": CODEBOOK, "raters": raters, "answers": answers}, indent=2),
        "results_summary.json": json.dumps(summary, indent=2),
        "results_summary.md": summary_markdown(summary),
    }


PERSONAL_FILES = ("raters.csv", "export.json")  # hold platform ids


def write_export(db: Session, study: Study, out_dir: Path, bootstrap_replicates: int) -> list[Path]:
    """Writes every export file into `out_dir`; those with platform ids readable by their owner only (0600)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in export_files(db, study, bootstrap_replicates).items():
        path = out_dir / name
        if name in PERSONAL_FILES:
            path.unlink(missing_ok=True)
            path.touch(mode=0o600)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _interval(bounds: Sequence[float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if bounds is None:
        return "n/a"
    return f"[{bounds[0] * scale:.{digits}f}, {bounds[1] * scale:.{digits}f}]"


def _percent(share: dict) -> str:
    if share["share"] is None:
        return "n/a"
    return f"{share['share'] * 100:.1f} % {_interval(share['wilson_ci95'], 100, 1)}"


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _mos_rows(groups: Sequence[tuple[str, dict | None]]) -> list[str]:
    return [
        f"| {name} | {mos['n_votes']} | {mos['n_raters']} | {mos['n_items']} | {mos['mean']:.2f} | "
        f"{_interval(mos['t_ci95'])} | {_interval(mos['clustered_bootstrap_ci95'])} |"
        for name, mos in groups
        if mos
    ]


def _alpha(agreement: dict) -> str:
    if agreement["alpha"] is None:
        return f"n/a ({agreement['reason']})"
    return f"{agreement['alpha']:.3f} ({agreement['units']} items rated by two or more raters)"


def summary_markdown(summary: dict) -> str:
    """A P.800.2-style account: scale, votes, CIs, screening and exclusions, then the numbers."""
    study, raters, screening = summary["study"], summary["raters"], summary["screening"]
    faces = study["kind"] == "faces"
    lines = [
        f"## Human study: {study['title']}",
        "",
        f"Quality scale: {study['quality_scale']}. Recognition: {study['recognition_question']}."
        if faces
        else f"Study kind: {study['kind']} ({KIND_QUESTIONS[study['kind']](study['design'])}).",
        (
            f"Raters: {raters['started']} started, {raters['completed']} completed, {raters['included']} included "
            f"after screening ({len(screening['excluded'])} excluded). CIs are 95 %; the clustered bootstrap "
            f"uses {study['bootstrap']}."
        ),
    ]
    if faces:
        lines += _faces_markdown(summary)
    lines += [
        "",
        "Screening (a completed session is excluded when it fails any rule; raters excluded per rule):",
        "",
        *(f"- {rule}: {screening['excluded_by_rule'][key]}" for key, rule in screening["rules"].items()),
        f"- {screening['incomplete_rule']}: {screening['incomplete']}",
    ]
    lines += _kind_markdown(summary)
    power = summary["power"]
    if power:
        plans = ", ".join(f"+-{plan['half_width']}: {plan['raters_needed']} raters" for plan in power["plans"])
        lines += [
            "",
            (
                f"Raters needed for a MOS CI of ({power['votes_per_rater']} test votes each, observed SD "
                f"{power['sd']:.2f}, rater ICC {power['rater_icc']:.2f}): {plans}."
            ),
        ]
    return "\n".join(lines) + "\n"


KIND_QUESTIONS = {  # what the rater of each audio-era kind was asked, from the study's design
    "matching": lambda design: f"a voice and {design.get('faces', 2)} faces: which face belongs to the voice?",
    "hype": lambda design: "one image: real photo or generated by a computer?",
    "pairwise": lambda design: f"two runs' faces of one clip: {design.get('question', '')}",
}


def _faces_markdown(summary: dict) -> list[str]:
    """The faces study's tables: MOS (test pairs, splits, identities, controls), recognition, lineup, agreement."""
    mos_header = [
        "| {} | Votes | Raters | Items | MOS | t-CI | rater x item bootstrap CI |",
        "|---|---|---|---|---|---|---|",
    ]
    lines = [
        "",
        mos_header[0].format("Test pairs"),
        mos_header[1],
        *_mos_rows([("all", summary["mos"]["overall"])]),
        *_mos_rows([(f"split {name}", mos) for name, mos in summary["mos"]["by_split"].items()]),
        "",
        mos_header[0].format("Identity"),
        mos_header[1],
        *_mos_rows(list(summary["mos"]["by_identity"].items())),
        "",
        mos_header[0].format("Control pairs (anchors)"),
        mos_header[1],
        *_mos_rows(
            [
                ("same person, other photo", summary["controls"]["same_person_mos"]),
                ("different person", summary["controls"]["different_person_mos"]),
            ]
        ),
    ]
    lines += ["", "| Recognition | n | Yes | No | Not sure | Yes among sure |", "|---|---|---|---|---|---|"]
    recognition_groups = [
        ("test pairs", summary["recognition"]["overall"]),
        ("control: same person", summary["controls"]["same_person"]),
        ("control: different person", summary["controls"]["different_person"]),
    ]
    for name, shares in recognition_groups:
        if shares:
            lines.append(
                f"| {name} | {shares['n']} | {_percent(shares['yes'])} | {_percent(shares['no'])} | "
                f"{_percent(shares['not_sure'])} | {_percent(shares['yes_among_sure'])} |"
            )
    lineup = summary["lineup"]
    if lineup:
        lines += [
            "",
            (
                f"Lineup: {lineup['correct']}/{lineup['n']} correct ({lineup['accuracy'] * 100:.1f} %, 95 % Wilson CI "
                f"{_interval(lineup['wilson_ci95'], 100, 1)}) against chance {lineup['chance'] * 100:.1f} %; "
                f"one-sided exact binomial p = {lineup['p_value_above_chance']:.3g}."
            ),
        ]
    agreement = summary["agreement"]
    lines += [
        "",
        (
            "Agreement on the test pairs (Krippendorff's alpha): quality (ordinal) "
            f"{_alpha(agreement['quality_ordinal'])}; recognition (nominal) {_alpha(agreement['recognition_nominal'])}."
        ),
    ]
    return lines


def _headline_line(row: dict) -> str:
    if row["unit"] == "share":
        value = f"{row['estimate'] * 100:.1f} % [{row['low'] * 100:.1f}, {row['high'] * 100:.1f}]"
    else:
        value = f"{row['estimate']:.2f} [{row['low']:.2f}, {row['high']:.2f}]"
    chance = "" if row["chance"] is None else f" (chance {row['chance'] * 100:.0f} %)" if row["unit"] == "share" else ""
    return f"| {row['label']} | {value}{chance} | {row['interval']} | {row['n']} | {row['raters']} |"


def _kind_markdown(summary: dict) -> list[str]:
    """The audio kinds' figures: the headline table, the pairwise win rates, ties and position bias, the audio
    check's exclusions and the matching power plan."""
    lines = []
    kind_rows = [row for row in summary["headline"] if row["kind"] in ("matching", "hype", "bradley_terry")]
    if kind_rows:
        lines += ["", "| Figure | Estimate, 95 % CI | Interval | Answers | Raters |", "|---|---|---|---|---|"]
        lines += [_headline_line(row) for row in kind_rows]
    pairwise = summary["pairwise"]
    if pairwise:
        lines += [
            "",
            "| Pair of runs | Comparisons | Ties | First run's win rate (ties apart), Wilson CI |",
            "|---|---|---|---|",
        ]
        for name, pair in pairwise["pairs"].items():
            rate = (
                "n/a"
                if pair["first_win_rate"] is None
                else (f"{pair['first_win_rate'] * 100:.1f} % {_interval(pair['wilson_ci95'], 100, 1)}")
            )
            lines.append(f"| {name} | {pair['n']} | {pair['ties']} | {rate} |")
        bias, ties = pairwise["position_bias"], pairwise["ties"]
        left = "n/a" if bias["left_share"] is None else f"{bias['left_share'] * 100:.1f} %"
        lines += [
            "",
            (
                f"Ties: {ties['count']} of {pairwise['n']} ({ties['handling']}). Position bias: the left face "
                f"was chosen in {left} of decided comparisons {_interval(bias['wilson_ci95'], 100, 1)} "
                f"(0.5 = none; two-sided binomial p = {_number(bias['p_value_two_sided'], 3)}). {pairwise['scale']}."
            ),
        ]
    matching = summary["matching"]
    if matching and matching["power"]:
        power = matching["power"]
        plans = ", ".join(f"+-{plan['half_width']}: {plan['raters_needed']} raters" for plan in power["plans"])
        lines += [
            "",
            (
                f"Raters needed for an arm's accuracy CI of ({power['votes_per_rater']} trials per arm each, "
                f"observed accuracy {power['accuracy']:.2f}, rater ICC {power['rater_icc']:.2f}): {plans}."
            ),
        ]
    screening = summary["screening"]
    if summary["study"]["design"].get("audio_check"):
        lines += ["", f"Audio check: {screening['audio_check_failed']} rater(s) {screening['audio_check_rule']}."]
    return lines
