"""The audio-era study kinds: what `create-study --kind matching|hype|pairwise` builds (survey_app.study_builder
builds the faces study and calls these).

- matching (voice -> face, Nagrani et al. CVPR 2018's forced choice): per clip, two items of `faces` faces each,
  one per arm: `real` (a photo of the speaker and of `faces - 1` impostors) and `generated` (the face generated from
  this clip and faces generated from impostors' clips). Impostors come from the speaker's group (the manifest's
  `group`, e.g. gender) when it has enough identities; the design stores the rule and how many items kept it.
- hype (Zhou et al. NeurIPS 2019, HYPE-infinity): single images, half real photos and half generated faces,
  "real photo or generated?", untimed.
- pairwise: two or more runs joined on the `clip` column; per clip and pair of runs, "which face fits the voice"
  (prompt `audio`) or "which looks more like the person in this photo" (prompt `image`).
Every kind whose trials play a voice starts each session with the audio check: clips of counted tones, made here
with numpy (no file of the run), all of one length so that the length tells nothing.

The design each kind stores in `Study.design`: `kind`, `faces`, `impostors` ("same group" or "any"),
`items_with_same_group_impostors`, `prompt`, `runs` (name -> folder), `audio_check` (trials, counts, tone
frequencies), `play_tolerance_s`.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile
from sqlalchemy.orm import Session

from survey_app.audio_check import (
    AUDIO_CHECK_COUNTS,
    AUDIO_CHECK_TRIALS,
    AUDIO_CHECK_VALUES,
    AUDIO_RATE,
    TONE_CLIP_S,
    TONE_HZ,
    TONE_PEAK,
    tone_clip,
)
from survey_app.manifest import ImagePair, ManifestError, RunInput
from survey_app.models import AudioClip, Item, ItemKind, Study, StudyKind
from survey_app.study_builder import (
    ImageCopier,
    StudyOptions,
    new_study,
    run_source,
    select_balanced_pairs,
    validate_common_options,
)

PLAY_TOLERANCE_S = 0.25  # the page's play and ended reports travel separately: their server times may be this close
AUDIO_KINDS = (StudyKind.MATCHING, StudyKind.PAIRWISE)  # a pairwise study plays audio only with prompt "audio"
PROMPTS = ("audio", "image")
MIN_EXPOSURE_MS, MAX_EXPOSURE_MS = 50, 10000
MAIN_ITEM_KIND = {  # the items a study of each kind measures with (its progress counts them)
    StudyKind.FACES: ItemKind.TEST,
    StudyKind.MATCHING: ItemKind.MATCHING,
    StudyKind.HYPE: ItemKind.HYPE,
    StudyKind.PAIRWISE: ItemKind.PAIRWISE,
}


@dataclass(frozen=True)
class KindOptions:
    """The audio kinds' options; `faces` is the matching trial's faces (N), `prompt` the pairwise prompt."""

    kind: StudyKind = StudyKind.FACES
    faces: int = 2
    prompt: str = "audio"
    exposures_ms: tuple[int, ...] = ()  # hype: fixed exposure times besides untimed trials (HYPE-time's range)


def needs_audio(kind: StudyKind, options: KindOptions) -> bool:
    """Whether trials of this kind play a voice clip (so the study needs the manifest's audio and an audio check)."""
    return kind == StudyKind.MATCHING or (kind == StudyKind.PAIRWISE and options.prompt == "audio")


def check_run_inputs(runs: Sequence[RunInput], options: KindOptions) -> None:
    """One clear error for a run folder the kind cannot use."""
    if options.kind != StudyKind.PAIRWISE and len(runs) != 1:
        raise ManifestError(f"--kind {options.kind.value} takes one --run (only --kind pairwise compares runs)")
    if options.kind == StudyKind.PAIRWISE:
        if len(runs) < 2:
            raise ManifestError("--kind pairwise needs two or more --run folders (the runs to compare)")
        if options.prompt not in PROMPTS:
            raise ManifestError(f"--prompt must be one of {', '.join(PROMPTS)}")
        for run in runs:
            if not run.has_clips:
                raise ManifestError(
                    f"{run.folder}/pairs.csv has no clip column (or an empty clip): --kind pairwise joins runs on it; "
                    "re-run `evalkit run` to write it"
                )
    if needs_audio(options.kind, options):
        for run in runs:
            if not run.has_audio:
                raise ManifestError(
                    f"{run.folder}/pairs.csv has no audio column (or an empty audio cell): --kind {options.kind.value}"
                    f"{' --prompt audio' if options.kind == StudyKind.PAIRWISE else ''} plays each clip's speech; "
                    "re-run `evalkit run` to write it"
                )
    if options.exposures_ms and options.kind != StudyKind.HYPE:
        raise ManifestError("--exposures-ms is an option of --kind hype")
    if any(not MIN_EXPOSURE_MS <= exposure <= MAX_EXPOSURE_MS for exposure in options.exposures_ms):
        raise ManifestError(f"--exposures-ms takes times from {MIN_EXPOSURE_MS} to {MAX_EXPOSURE_MS} ms")
    if options.kind == StudyKind.MATCHING:
        identities = {pair.identity for pair in runs[0].pairs}
        if not 2 <= options.faces <= len(identities):
            raise ManifestError(
                f"--faces must be between 2 and the number of identities in the manifest ({len(identities)}): "
                "each face of a matching trial shows a different person"
            )


class AudioStore:
    """Writes voice clips (mono, resampled to AUDIO_RATE) and tone clips as 16-bit WAV files named by random ids."""

    def __init__(self, db: Session, study: Study, store: Path, run_folder: Path) -> None:
        self.db, self.study, self.store, self.run_folder = db, study, store, run_folder
        self.by_source: dict[Path, AudioClip] = {}
        store.mkdir(parents=True, exist_ok=True)

    def voice(self, pair: ImagePair) -> AudioClip:
        if pair.audio in self.by_source:
            return self.by_source[pair.audio]
        try:
            samples, rate = soundfile.read(str(pair.audio), dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise ManifestError(f"{pair.audio} is not a readable audio file") from error
        clip = self._write(
            _resampled(samples.mean(axis=1), rate),
            pair.identity,
            pair.clip or pair.audio.stem,
            pair.audio.relative_to(self.run_folder).as_posix(),
        )
        self.by_source[pair.audio] = clip
        return clip

    def tones(self, count: int, rng: random.Random) -> AudioClip:
        return self._write(tone_clip(count, rng), "", f"tones-{count}", "")

    def _write(self, samples: np.ndarray, identity: str, clip_id: str, source: str) -> AudioClip:
        clip = AudioClip(
            id=secrets.token_hex(16),
            study_id=self.study.id,
            identity=identity,
            clip=clip_id[:300],
            duration_s=len(samples) / AUDIO_RATE,
            source_path=source,
        )
        soundfile.write(str(self.store / f"{clip.id}.wav"), samples, AUDIO_RATE, subtype="PCM_16")
        self.db.add(clip)
        return clip


def _resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    """Linear-interpolation resampling to AUDIO_RATE (the clips are speech for a listener, not for a model)."""
    if rate == AUDIO_RATE:
        return samples
    length = max(1, round(len(samples) * AUDIO_RATE / rate))
    return np.interp(np.linspace(0, len(samples) - 1, length), np.arange(len(samples)), samples).astype(np.float32)


def audio_check_items(audio: AudioStore, rng: random.Random) -> list[Item]:
    """One audio-check item per tone count; each session draws AUDIO_CHECK_TRIALS of them."""
    items = []
    for count in AUDIO_CHECK_COUNTS:
        clip = audio.tones(count, rng)
        items.append(
            Item(kind=ItemKind.AUDIO_CHECK, identity="", split="", audio_id=clip.id, expected_answer=str(count))
        )
    return items


def create_kind_study(
    db: Session, runs: Sequence[RunInput], image_store: Path, options: StudyOptions, kind_options: KindOptions
) -> Study:
    """Adds a matching, hype or pairwise study and its items to `db` (the caller commits), writing its images and
    audio into `image_store`. Raises ManifestError for options or run folders the kind cannot use."""
    validate_common_options(db, options)
    check_run_inputs(runs, kind_options)
    rng = random.Random(options.seed)
    kind = kind_options.kind
    base = Path(os.path.commonpath([run.folder.absolute() for run in runs]))
    source = run_source(runs[0]) if len(runs) == 1 else {"runs": [run_source(run) for run in runs]}
    design: dict = {"kind": kind.value, "play_tolerance_s": PLAY_TOLERANCE_S}
    study = new_study(db, replace(options, lineup_size=0), source, kind, dict(design))
    groups = {pair.identity: pair.group for run in runs for pair in run.pairs}
    images = ImageCopier(db, study, base, image_store, groups)
    audio = AudioStore(db, study, image_store, base)
    notes: list[str] = []
    if needs_audio(kind, kind_options):
        study.items.extend(audio_check_items(audio, rng))
        design["audio_check"] = {
            "trials": AUDIO_CHECK_TRIALS,
            "tone_counts": list(AUDIO_CHECK_COUNTS),
            "answers": list(AUDIO_CHECK_VALUES),
            "tone_hz": list(TONE_HZ),
            "peak_dbfs": round(float(20 * np.log10(TONE_PEAK)), 1),
            "clip_s": TONE_CLIP_S,
        }
    if kind == StudyKind.MATCHING:
        study.items.extend(_matching_items(runs[0], options, kind_options.faces, images, audio, rng, design))
    elif kind == StudyKind.HYPE:
        study.items.extend(_hype_items(runs[0], options, images, rng, notes))
        design |= {
            "exposures_ms": [None, *sorted(set(kind_options.exposures_ms))],
            "exposure_protocol": "untimed, and per fixed exposure: a 3-2-1 countdown (500 ms each), the image for the "
            "exposure time, then a noise mask (HYPE, Zhou et al. 2019); conditions balanced within each session and "
            "arm; timing is the page's (needs its script)",
        }
    else:
        study.items.extend(_pairwise_items(runs, options, kind_options.prompt, images, audio, rng, design))
    db.flush()
    images.equalize()
    study.design = design
    study.source = study.source | {"design_notes": notes}
    return study


def _impostors(
    pair: ImagePair, by_identity: dict[str, list[ImagePair]], needed: int, rng: random.Random
) -> tuple[list[ImagePair], bool]:
    """`needed` pairs of other identities (one each), of the speaker's group when it has enough; and whether they
    are of its group."""
    others = sorted(identity for identity in by_identity if identity != pair.identity)
    same_group = [other for other in others if pair.group and by_identity[other][0].group == pair.group]
    same = len(same_group) >= needed
    chosen = rng.sample(same_group if same else others, needed)
    return [rng.choice(by_identity[identity]) for identity in chosen], same


def _matching_items(
    run: RunInput,
    options: StudyOptions,
    faces: int,
    images: ImageCopier,
    audio: AudioStore,
    rng: random.Random,
    design: dict,
) -> list[Item]:
    """Per selected clip, a real-arm and a generated-arm item with the same impostor identities."""
    by_identity: dict[str, list[ImagePair]] = {}
    for pair in run.pairs:
        by_identity.setdefault(pair.identity, []).append(pair)
    items, same_group = [], 0
    for pair in select_balanced_pairs(run.pairs, options.test_pairs, rng):
        impostors, same = _impostors(pair, by_identity, faces - 1, rng)
        same_group += same
        voice = audio.voice(pair)
        for arm, face in (("real", images.real), ("generated", images.generated)):
            items.append(
                Item(
                    kind=ItemKind.MATCHING,
                    identity=pair.identity,
                    split=pair.split,
                    arm=arm,
                    clip=pair.clip or voice.clip,
                    audio_id=voice.id,
                    option_image_ids=[face(option).id for option in (pair, *impostors)],
                )
            )
    design |= {
        "faces": faces,
        "chance": 1 / faces,
        "arms": ["real", "generated"],
        "impostors": "same group when the speaker's group has enough identities, else any other identity",
        "items_with_same_group_impostors": same_group,
        "clips": len(items) // 2,
    }
    return items


def _hype_items(
    run: RunInput, options: StudyOptions, images: ImageCopier, rng: random.Random, notes: list[str]
) -> list[Item]:
    """`test_pairs` generated faces and as many distinct real photos (HYPE shows half real, half generated)."""
    selected = select_balanced_pairs(run.pairs, options.test_pairs, rng)
    generated = [
        Item(
            kind=ItemKind.HYPE,
            identity=pair.identity,
            split=pair.split,
            arm="generated",
            clip=pair.clip or None,
            probe_image_id=images.generated(pair).id,
        )
        for pair in selected
    ]
    reals: dict[Path, ImagePair] = {}
    for pair in select_balanced_pairs(run.pairs, 0, rng):
        reals.setdefault(pair.real, pair)
    real_pairs = list(reals.values())[: len(generated)]
    if len(real_pairs) < len(generated):
        notes.append(f"only {len(real_pairs)} distinct real photos for {len(generated)} generated faces")
    real = [
        Item(
            kind=ItemKind.HYPE,
            identity=pair.identity,
            split=pair.split,
            arm="real",
            probe_image_id=images.real(pair).id,
        )
        for pair in real_pairs
    ]
    return generated + real


def run_names(runs: Sequence[RunInput]) -> list[str]:
    """Each run's name: its folder's name, made unique with its position when two folders share a name."""
    names = [run.folder.resolve().name or "run" for run in runs]
    return [f"{name}#{index + 1}" if names.count(name) > 1 else name for index, name in enumerate(names)]


def _pairwise_items(
    runs: Sequence[RunInput],
    options: StudyOptions,
    prompt: str,
    images: ImageCopier,
    audio: AudioStore,
    rng: random.Random,
    design: dict,
) -> list[Item]:
    """Per clip common to every run (at most `test_pairs` of them, balanced), one item per pair of runs."""
    names = run_names(runs)
    by_clip = [{pair.clip: pair for pair in run.pairs} for run in runs]
    common = set(by_clip[0]).intersection(*by_clip[1:])
    if not common:
        raise ManifestError("the runs share no clip id: --kind pairwise compares runs on the same evaluation set")
    first_run = [pair for pair in runs[0].pairs if pair.clip in common]
    items = []
    for pair in select_balanced_pairs(first_run, options.test_pairs, rng):
        faces = {
            name: images.generated(clips[pair.clip], system=name) for name, clips in zip(names, by_clip, strict=True)
        }
        prompt_fields = (
            {"audio_id": audio.voice(pair).id} if prompt == "audio" else {"reference_image_id": images.real(pair).id}
        )
        for first, second in itertools.combinations(names, 2):
            items.append(
                Item(
                    kind=ItemKind.PAIRWISE,
                    identity=pair.identity,
                    split=pair.split,
                    arm=prompt,
                    clip=pair.clip,
                    option_image_ids=[faces[first].id, faces[second].id],
                    **prompt_fields,
                )
            )
    design |= {
        "prompt": prompt,
        "question": PAIRWISE_QUESTIONS[prompt],
        "runs": {name: str(run.folder.resolve()) for name, run in zip(names, runs, strict=True)},
        "clips": len(items) // max(1, len(names) * (len(names) - 1) // 2),
        "ties": "allowed ('about the same'); Bradley-Terry counts a tie as half a win each way",
    }
    return items


PAIRWISE_QUESTIONS = {
    "audio": "Which face fits the voice better?",
    "image": "Which face looks more like the person in this photo?",
}
