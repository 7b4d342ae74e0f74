"""The build report: ``build_report.md`` (what was removed and why, per identity), ``build_summary.json`` (the same
figures for programs) and ``rejected_faces.png`` (a contact sheet: one row of examples per reason)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from generator.data.audit import DEFAULT_MIN_RUN, audit_report, format_audit
from generator.data.faces import read_image_rgb
from generator.data.manifest import Manifest
from generator.dataset_builder.cleaning import FACE_REASONS, IdentityResult, Rejection
from generator.dataset_builder.splitting import SplitResult

SHEET_TILE = 112
SHEET_LABEL = 14
SHEET_PER_REASON = 12
SPLITS = ("train", "seen", "unseen_speech", "unseen_identity")


@dataclass(frozen=True)
class VideoError:
    source: str
    message: str


def summary(results: Sequence[IdentityResult], dropped: dict[str, int], split: SplitResult,
            errors: Sequence[VideoError], settings: dict) -> dict:
    """Every figure of the report, per identity and in total."""
    counts = Manifest(tuple(split.pairs)).counts()
    rows = {}
    for r in results:
        rows[r.identity] = {
            "videos": r.videos, "failed_videos": r.failed_videos, "video_seconds": round(r.video_seconds, 3),
            "frames": r.frames, **{reason: r.removed[reason] for reason in FACE_REASONS},
            "faces_kept": r.faces_kept, "windows": r.windows, "windows_no_speech": r.windows_no_speech,
            "windows_no_pauses": r.windows_no_pauses,
            "pairs_cleaned": len(r.pairs) + dropped.get(r.identity, 0), "pairs_dropped_balancing":
            dropped.get(r.identity, 0), **{s: counts.get(s, {}).get(r.identity, 0) for s in SPLITS},
        }
    totals: Counter[str] = Counter()
    for row in rows.values():
        totals.update(row)
    totals["video_seconds"] = round(totals["video_seconds"], 3)
    return {"settings": settings, "identities": rows, "totals": dict(totals), "pairs": len(split.pairs),
            "single_recording_identities": split.single_recording, "single_recording_policy": split.policy,
            "video_errors": [{"source": e.source, "error": e.message} for e in errors]}


def write_report(out: Path, figures: dict, rejections: Sequence[Rejection], split: SplitResult) -> Path:
    """Write the markdown report, the JSON summary and the contact sheet into ``out``; returns the report's path."""
    (out / "build_summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    sheet = contact_sheet(rejections, out / "rejected_faces.png")
    manifest = Manifest(tuple(split.pairs), out / "manifest.csv")
    audit = format_audit(audit_report(manifest, split.overlaps, DEFAULT_MIN_RUN)) if len(manifest.splits) > 1 else \
        f"one split only ({manifest.splits[0]}): no split pairs to audit"
    path = out / "build_report.md"
    path.write_text(_markdown(figures, sheet, audit))
    return path


def contact_sheet(rejections: Sequence[Rejection], path: Path) -> Path | None:
    """One row per reason with up to SHEET_PER_REASON examples, taken from the identities in turn."""
    by_reason = {reason: _interleave([r for r in rejections if r.reason == reason]) for reason in FACE_REASONS}
    rows = [(reason, items[:SHEET_PER_REASON]) for reason, items in by_reason.items() if items]
    if not rows:
        path.unlink(missing_ok=True)
        return None
    cell = SHEET_TILE + SHEET_LABEL
    columns = max(len(items) for _, items in rows)
    sheet = Image.new("RGB", (SHEET_TILE * columns, cell * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, (reason, items) in enumerate(rows):
        for col, item in enumerate(items):
            tile = read_image_rgb(item.image)
            tile.thumbnail((SHEET_TILE, SHEET_TILE))
            x, y = col * SHEET_TILE, row * cell
            sheet.paste(tile, (x, y + SHEET_LABEL))
            draw.text((x + 2, y + 1), f"{reason}: {item.identity}"[:22], fill=(0, 0, 0))
    sheet.save(path)
    return path


def _interleave(items: list[Rejection]) -> list[Rejection]:
    per_identity: dict[str, list[Rejection]] = {}
    for item in items:
        per_identity.setdefault(item.identity, []).append(item)
    queues = list(per_identity.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


FACE_COLUMNS = ("videos", "failed_videos", "video_seconds", "frames", *FACE_REASONS, "faces_kept")
PAIR_COLUMNS = ("windows", "windows_no_speech", "windows_no_pauses", "pairs_cleaned", "pairs_dropped_balancing",
                *SPLITS)


REASONS = (
    "Reasons: `no_face` no face detected; `several_faces` another face of similar size; `outlier` descriptor far "
    "from the identity's robust centroid; `no_audio` no full window of audio near the frame; `no_speech` no window "
    "of the face passed the speech checks: `windows_no_speech` too little voice activity, `windows_no_pauses` no "
    "pauses (music or several voices; off unless --min-pauses is set). Rules and thresholds: "
    "`generator/dataset_builder/cleaning.py`."
)


def _table(figures: dict, columns: Sequence[str]) -> list[str]:
    lines = ["| identity | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in [*figures["identities"].items(), ("**total**", figures["totals"])]:
        lines.append(f"| {name} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |")
    return lines


def _markdown(figures: dict, sheet: Path | None, audit: str) -> str:
    t = figures["totals"]
    overview = (f"{t['videos']} videos ({t['video_seconds']} s), {t['failed_videos']} failed; {t['frames']} frames "
                f"sampled, {t['faces_kept']} faces kept; {figures['pairs']} audio-face pairs in `manifest.csv`.")
    lines = [
        "# Build report", "", overview, "",
        "## Faces: sampled frames, removed by reason, kept", "", *_table(figures, FACE_COLUMNS), "", REASONS, "",
        "## Audio windows and pairs", "", *_table(figures, PAIR_COLUMNS), "",
    ]
    if figures["single_recording_identities"]:
        verb = "held out whole as unseen_identity" if figures["single_recording_policy"] == "unseen-identity" \
            else "dropped"
        lines += [f"Identities with a single audio group (nothing can be held out as unseen speech), {verb}: "
                  + ", ".join(figures["single_recording_identities"]), ""]
    if figures["video_errors"]:
        lines += ["## Videos that failed", ""] + [f"- `{e['source']}`: {e['error']}" for e in figures["video_errors"]]
        lines.append("")
    lines += ["## Rejected faces", ""]
    lines += [f"![rejected faces]({sheet.name})", ""] if sheet else ["None.", ""]
    lines += ["## Leak audit of the split", "", "```", audit, "```", "", "## Settings", "", "```json",
              json.dumps(figures["settings"], indent=2), "```", ""]
    return "\n".join(lines)
