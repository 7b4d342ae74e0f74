"""PyTorch dataset of (speech, face, wrong face, identity index) built on a manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from generator.data.audio import Normalisation, ShortPolicy, load_speech
from generator.data.faces import load_face
from generator.data.manifest import Manifest
from generator.errors import DataError


@dataclass(frozen=True)
class DataOptions:
    image_size: int = 64
    audio_seconds: float = 1.0
    normalisation: Normalisation = "peak"
    short_audio: ShortPolicy = "error"
    fix_bgr: bool = True


class SpeechFaceDataset(Dataset):
    """Items are dicts: ``speech`` (1, N), ``face`` (3, S, S), ``wrong_face`` (3, S, S) of another identity, ``label``.

    ``identities`` fixes the label order (a checkpoint's identity list); by default the manifest's sorted identities.
    With ``preload`` every face and clip is decoded once into memory (the released data takes about 0.5 GB at 64 px).
    """

    def __init__(
        self,
        manifest: Manifest,
        options: DataOptions = DataOptions(),
        identities: list[str] | None = None,
        preload: bool = False,
        need_wrong_faces: bool = True,
        seed: int = 0,
    ) -> None:
        if len(manifest) == 0:
            raise DataError("dataset has no pairs")
        self.manifest = manifest
        self.options = options
        self.identities = identities or manifest.identities
        index = {name: i for i, name in enumerate(self.identities)}
        unknown = sorted({p.identity for p in manifest.pairs} - set(index))
        if unknown:
            raise DataError(f"identities {unknown} are not among the model's identities {self.identities}")
        self.labels = torch.tensor([index[p.identity] for p in manifest.pairs], dtype=torch.long)
        self.need_wrong_faces = need_wrong_faces
        if need_wrong_faces and len(set(self.labels.tolist())) < 2:
            raise DataError("a wrong face needs at least two identities with faces in the data")
        self._rng = np.random.default_rng(seed)
        self._by_label = {lab: np.flatnonzero(self.labels.numpy() != lab) for lab in set(self.labels.tolist())}
        self._speech: torch.Tensor | None = None
        self._faces: torch.Tensor | None = None
        if preload:
            self.preload()

    def __len__(self) -> int:
        return len(self.manifest)

    def speech(self, i: int) -> torch.Tensor:
        if self._speech is not None:
            return self._speech[i]
        p = self.manifest.pairs[i]
        o = self.options
        return torch.from_numpy(load_speech(p.audio, o.audio_seconds, o.normalisation, o.short_audio)).unsqueeze(0)

    def face(self, i: int) -> torch.Tensor:
        if self._faces is not None:
            return self._faces[i]
        p = self.manifest.pairs[i]
        swap = self.options.fix_bgr and p.face_order == "bgr"
        return torch.from_numpy(load_face(p.face, self.options.image_size, swap))

    def wrong_index(self, i: int) -> int:
        """A uniformly random pair of another identity (the paper's cross-identity 'wrong face')."""
        candidates = self._by_label[int(self.labels[i])]
        return int(candidates[self._rng.integers(len(candidates))])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"speech": self.speech(i), "face": self.face(i), "label": self.labels[i]}
        if self.need_wrong_faces:
            item["wrong_face"] = self.face(self.wrong_index(i))
        return item

    def preload(self) -> None:
        """Decode everything once; faces shared by several clips are decoded once."""
        face_cache: dict = {}
        speech, faces = [], []
        for i, p in enumerate(tqdm(self.manifest.pairs, desc="loading pairs", unit="pair", leave=False, disable=None)):
            speech.append(self.speech(i))
            if p.face not in face_cache:
                face_cache[p.face] = self.face(i)
            faces.append(face_cache[p.face])
        self._speech = torch.stack(speech)
        self._faces = torch.stack(faces)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(speech, faces, labels) of the whole dataset, preloading if needed."""
        if self._speech is None or self._faces is None:
            self.preload()
        return cast(torch.Tensor, self._speech), cast(torch.Tensor, self._faces), self.labels

    def sample_wrong_indices(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Vectorised wrong-face draw for a batch of labels: a random pair of a different identity for each."""
        out = torch.empty_like(labels)
        for lab in labels.unique().tolist():
            mask = labels == lab
            pool = torch.from_numpy(self._by_label[lab])
            out[mask] = pool[torch.randint(len(pool), (int(mask.sum()),), generator=generator)]
        return out
