"""The seed's published figures (Wav2Pix posters, reference notes §10) beside ours, each with its setting, so that
unlike is not compared with unlike (10 identities and VGG-Face there; this run's identities and backbone here)."""

from __future__ import annotations

from evalkit.record import SEED_FIGURES, SEED_SOURCE, Footnotes, RunRecord, SeedFigure, metric_cell
from evalkit.sections import Table

SEED_IDENTITIES = 10


def our_setting(document: RunRecord) -> str:
    settings = document["settings"]
    identities = document["generator"].get("identities") or []
    seconds = settings["audio_seconds"]
    return (f"{len(identities)} identities (chance {100 / len(identities):.0f} %)" if identities else
            "identities unknown") + (f", {settings['image_size']} px, "
                                     f"{f'{seconds:g} s' if seconds is not None else 'no'} audio, "
                                     f"identity backbone {settings['identity_backbone']}, dlib HOG detector at "
                                     f"{settings['detector_size']} px, upsample {settings['detector_upsample']}")


def _ours(document: RunRecord, seed: SeedFigure, split: str, notes: Footnotes) -> str:
    if split not in document["splits"]:
        return f"not evaluated{notes.mark('not evaluated: split not in the data.')}"
    seconds = document["settings"]["audio_seconds"]
    if seed.audio_seconds is not None and seconds is not None and seed.audio_seconds != seconds:
        reason = f"not measured: this generator uses {seconds:g} s audio (see evalkit experiment audio-length)."
        return f"not measured{notes.mark(reason)}"
    return metric_cell(document["results"], seed.metric, seed.figure, split, notes)


def seed_table(document: RunRecord) -> Table:
    notes = Footnotes()
    rows = [[seed.label, seed.value, seed.setting, _ours(document, seed, "seen", notes),
             _ours(document, seed, "unseen_speech", notes)] for seed in SEED_FIGURES]
    return Table("The seed's published figures beside ours",
                 ["Figure", "Wav2Pix (published)", "Wav2Pix setting", "Ours: seen speech", "Ours: unseen speech"],
                 rows, note=f"Published values: {SEED_SOURCE}. Our setting: {our_setting(document)}. With "
                            f"{SEED_IDENTITIES} identities chance is 10 %; with 2 it is 50 %, so identity accuracies "
                            f"are not comparable across the two settings. {notes.note()}")
