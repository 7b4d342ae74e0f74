"""The PyTorch dataset: items, the cross-identity wrong face, preloading, options and bad files inside a dataset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from generator.data.dataset import DataOptions, SpeechFaceDataset
from generator.data.manifest import Manifest, read_manifest, write_manifest
from generator.errors import DataError

OPTIONS = DataOptions(audio_seconds=0.3)  # the corpus clips are 0.3 s long


@pytest.fixture
def manifest(corpus):
    return read_manifest(corpus.manifest)


@pytest.mark.parametrize("size, seconds", [(64, 0.3), (128, 0.3)])
def test_items_have_model_shapes(manifest, size, seconds):
    ds = SpeechFaceDataset(manifest, DataOptions(image_size=size, audio_seconds=seconds))
    item = ds[5]
    assert item["speech"].shape == (1, int(seconds * 16000)) and item["speech"].dtype == torch.float32
    assert item["face"].shape == item["wrong_face"].shape == (3, size, size)
    assert item["label"].dtype == torch.long and int(item["label"]) == 0
    assert len(ds) == 36 and ds.identities == ["person0", "person1", "person2"]


def test_longer_inputs_than_the_clips_are_an_error_or_padding(manifest):
    ds = SpeechFaceDataset(manifest, DataOptions(audio_seconds=0.7))
    with pytest.raises(DataError, match="shorter than the 11200 samples") as err:
        ds.speech(0)
    assert str(manifest.pairs[0].audio) in str(err.value)
    padded = SpeechFaceDataset(manifest, DataOptions(audio_seconds=0.7, short_audio="pad")).speech(0)
    assert padded.shape == (1, 11200) and torch.all(padded[0, :3200] == 0)
    assert torch.all(padded[0, -3199:] == 0)  # pre-emphasis of the last sample reaches the first padded one


def test_wrong_face_is_always_another_identity(manifest):
    ds = SpeechFaceDataset(manifest, OPTIONS, seed=1)
    labels = ds.labels.tolist()
    for i in range(len(ds)):
        wrong = [ds.wrong_index(i) for _ in range(30)]
        assert all(labels[w] != labels[i] for w in wrong)
        assert {labels[w] for w in wrong} == set(range(3)) - {labels[i]}  # every other identity is drawn
    g = torch.Generator().manual_seed(0)
    batch = ds.labels[torch.randint(len(ds), (500,), generator=g)]
    wrong = ds.sample_wrong_indices(batch, g)
    assert torch.all(ds.labels[wrong] != batch)


def test_getitem_wrong_face_is_a_face_of_another_person(manifest):
    ds = SpeechFaceDataset(manifest, OPTIONS, seed=2)
    faces_by_label = {lab: {tuple(ds.face(i)[:, 0, 0].tolist()) for i in range(len(ds)) if ds.labels[i] == lab}
                      for lab in range(3)}
    for i in range(0, len(ds), 5):
        item = ds[i]
        pixel = tuple(item["wrong_face"][:, 0, 0].tolist())
        assert pixel not in faces_by_label[int(item["label"])]
        assert any(pixel in faces for lab, faces in faces_by_label.items() if lab != int(item["label"]))


def test_identity_order_follows_a_given_list(manifest):
    ds = SpeechFaceDataset(manifest, OPTIONS, identities=["person2", "person0", "person1", "extra"])
    assert int(ds[0]["label"]) == 1 and ds.identities[int(ds[len(ds) - 1]["label"])] == "person2"
    with pytest.raises(DataError, match=r"identities \['person2'\] are not among"):
        SpeechFaceDataset(manifest, OPTIONS, identities=["person0", "person1"])


def test_wrong_faces_need_two_identities(corpus):
    one = read_manifest(corpus.manifest)
    one = Manifest(tuple(p for p in one.pairs if p.identity == "person0"))
    with pytest.raises(DataError, match="wrong face needs at least two identities"):
        SpeechFaceDataset(one, OPTIONS)
    assert len(SpeechFaceDataset(one, OPTIONS, need_wrong_faces=False)) == 12
    with pytest.raises(DataError, match="no pairs"):
        SpeechFaceDataset(Manifest(()))


def test_preload_matches_lazy_loading(manifest):
    lazy = SpeechFaceDataset(manifest, OPTIONS)
    eager = SpeechFaceDataset(manifest, OPTIONS, preload=True)
    speech, faces, labels = eager.tensors()
    assert speech.shape == (36, 1, 4800) and faces.shape == (36, 3, 64, 64)
    for i in (0, 7, 35):
        assert torch.equal(lazy.speech(i), speech[i]) and torch.equal(lazy.face(i), faces[i])
    assert torch.equal(labels, lazy.labels)


def test_bgr_rows_are_fixed_only_when_asked(corpus, tmp_path):
    m = read_manifest(corpus.manifest)
    bgr = read_manifest(write_manifest([replace(p, face_order="bgr") for p in m.pairs], tmp_path / "bgr.csv"))
    plain = SpeechFaceDataset(m, OPTIONS).face(0)
    fixed = SpeechFaceDataset(bgr, replace(OPTIONS, fix_bgr=True)).face(0)
    kept = SpeechFaceDataset(bgr, replace(OPTIONS, fix_bgr=False)).face(0)
    assert torch.equal(fixed, plain.flip(0)) and torch.equal(kept, plain)
    assert not torch.equal(fixed, plain)


def test_legacy_normalisation_option_reaches_the_items(manifest):
    speech = SpeechFaceDataset(manifest, replace(OPTIONS, normalisation="legacy_py2")).speech(0)
    assert set(np.round(speech.numpy().ravel().astype(float), 6)) <= {-1.0, -0.95, -0.05, 0.0, 0.95, 1.0, 1.95, -1.95}


@pytest.mark.parametrize("kind", ["face", "audio"])
def test_a_corrupt_file_in_the_dataset_is_named(manifest, kind):
    target = getattr(manifest.pairs[4], kind)
    target.write_bytes(b"\x00garbage\x00" * 10)
    ds = SpeechFaceDataset(manifest, OPTIONS)
    with pytest.raises(DataError) as err:
        ds.preload()
    assert str(target) in str(err.value) and "not a readable" in str(err.value)
