"""The seed's published figures (Wav2Pix posters, reference notes §10) beside ours, each with its setting, so that
unlike is not compared with unlike (10 identities and VGG-Face there; this run's identities and backbone here)."""

from __future__ import annotations

from pathlib import Path

from evalkit.record import SEED_FIGURES, SEED_SOURCE, Footnotes, RunRecord, SeedFigure, metric_cell
from evalkit.sections import EXPERIMENTS_DIR, SECTION_FILE, Table, read_section

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


AUDIO_LENGTH = "audio-length"  # evalkit.experiments.audio_length.NAME (reports does not import the experiments)


def audio_length_runs(run_dir: Path, image_size: int) -> dict[float, dict]:
    """The runs of an ``evalkit experiment audio-length`` written into the same folder, by audio seconds (only those
    at ``image_size``): each ``{"results", "generator", "audio_seconds", ...}`` as the section's data stores it.
    Empty when the folder has no such experiment (or one from before the data held settings)."""
    path = Path(run_dir) / EXPERIMENTS_DIR / AUDIO_LENGTH / SECTION_FILE
    if not path.is_file():
        return {}
    return {run["audio_seconds"]: run for run in read_section(path).data.values()
            if isinstance(run, dict) and "audio_seconds" in run and run.get("image_size") == image_size}


def _ours(document: RunRecord, seed: SeedFigure, split: str, notes: Footnotes,
          by_length: dict[float, dict]) -> str:
    if split not in document["splits"]:
        return f"not evaluated{notes.mark('not evaluated: split not in the data.')}"
    seconds = document["settings"]["audio_seconds"]
    if seed.audio_seconds is not None and seconds is not None and seed.audio_seconds != seconds:
        run = by_length.get(seed.audio_seconds)
        if run is None:
            reason = f"not measured: this generator uses {seconds:g} s audio (see evalkit experiment audio-length)."
            return f"not measured{notes.mark(reason)}"
        mark = notes.mark(f"from this folder's audio-length experiment: the {seed.audio_seconds:g} s checkpoint "
                          f"{run['generator']}, evaluated on the same data; its training budget may differ from this "
                          "run's generator: the experiment's section compares the lengths at one budget.")
        return metric_cell(run["results"], seed.metric, seed.figure, split, notes) + mark
    return metric_cell(document["results"], seed.metric, seed.figure, split, notes)


def seed_table(document: RunRecord, by_length: dict[float, dict] | None = None) -> Table:
    """The seed's published figures beside this run's; rows for another audio length are filled from ``by_length``
    (``audio_length_runs``) when the folder holds that experiment, else marked "not measured"."""
    notes = Footnotes()
    by_length = by_length or {}
    rows = [[seed.label, seed.value, seed.setting, _ours(document, seed, "seen", notes, by_length),
             _ours(document, seed, "unseen_speech", notes, by_length)] for seed in SEED_FIGURES]
    return Table("The seed's published figures beside ours",
                 ["Figure", "Wav2Pix (published)", "Wav2Pix setting", "Ours: seen speech", "Ours: unseen speech"],
                 rows, note=f"Published values: {SEED_SOURCE}. Our setting: {our_setting(document)}. With "
                            f"{SEED_IDENTITIES} identities chance is 10 %; with 2 it is 50 %, so identity accuracies "
                            f"are not comparable across the two settings. {notes.note()}")
