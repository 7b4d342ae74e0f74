"""Synthesis: one PNG per audio file with the same stem, batched; the three sampling modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from generator.checkpoint import load_generator
from generator.data.audio import load_speech
from generator.errors import DataError
from generator.synthesis import collect_audio, generate, synthesize_files


@pytest.fixture
def audio_dir(tmp_path, make_audio, make_noise):
    """Five clips of at least 0.3 s in assorted formats, plus files that are not audio."""
    folder = tmp_path / "audio"
    make_audio(folder / "a.wav", make_noise(4800, 1))
    make_audio(folder / "b.flac", make_noise(6000, 2))
    make_audio(folder / "c.wav", np.stack([make_noise(13_230, 3), make_noise(13_230, 4)], 1), rate=44_100)
    make_audio(folder / "d.WAV", make_noise(5000, 5))
    make_audio(folder / "e.wav", make_noise(16_000, 6))
    (folder / "notes.txt").write_text("not audio")
    (folder / "sub").mkdir()
    return folder


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_one_png_per_audio_file_with_the_same_stem(saved_checkpoint, audio_dir, tmp_path):
    written = synthesize_files(saved_checkpoint, audio_dir, tmp_path / "out", batch_size=2)
    assert [p.name for p in written] == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in written]
    for p in written:
        img = Image.open(p)
        assert img.size == (64, 64) and img.mode == "RGB"


def test_png_is_the_models_eval_output(saved_checkpoint, audio_dir, tmp_path):
    (written,) = synthesize_files(saved_checkpoint, audio_dir / "b.flac", tmp_path / "out")
    model = load_generator(saved_checkpoint).model
    speech = torch.from_numpy(load_speech(audio_dir / "b.flac", 0.3))[None, None]
    model.eval()
    with torch.no_grad():
        face = model(speech)[0][0].numpy()
    expected = np.round(np.clip((face.transpose(1, 2, 0) + 1) * 127.5, 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(read_png(written), expected)


def test_eval_mode_is_deterministic_and_independent_of_the_batch(saved_checkpoint, audio_dir, tmp_path):
    one = synthesize_files(saved_checkpoint, audio_dir, tmp_path / "one", batch_size=1)
    five = synthesize_files(saved_checkpoint, audio_dir, tmp_path / "five", batch_size=5, seed=9)
    for a, b in zip(one, five, strict=True):
        np.testing.assert_array_equal(read_png(a), read_png(b))


@pytest.fixture
def model_and_speech(saved_checkpoint, speech_batch):
    model = load_generator(saved_checkpoint).model
    return model, speech_batch(4, 0.3, seed=3)


def test_dropout_sampling_is_seeded(model_and_speech):
    model, speech = model_and_speech
    eval_faces = generate(model, speech, "eval")
    a = generate(model, speech, "dropout", seed=1)
    b = generate(model, speech, "dropout", seed=1)
    c = generate(model, speech, "dropout", seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, eval_faces)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    generate(model, speech, "dropout", seed=5)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG stream is untouched


def test_dropout_sampling_uses_batchnorm_running_statistics(model_and_speech):
    model, speech = model_and_speech
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one = generate(model, speech[:1], "dropout", seed=1)  # BatchNorm in training mode cannot take one clip
    assert one.shape == (1, 3, 64, 64)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name  # no running-statistics update
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("was_training", [False, True])
def test_train_mode_sampling_restores_the_model(model_and_speech, was_training):
    model, speech = model_and_speech
    model.train(was_training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    faces = generate(model, speech, "train", seed=1)
    assert model.training == was_training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name  # BatchNorm statistics and spectral-norm u/v restored
    assert torch.equal(faces, generate(model, speech, "train", seed=1))
    # batch statistics: a clip's face depends on the rest of its batch
    assert not torch.equal(faces[:2], generate(model, speech[:2], "train", seed=1))


def test_bgr_output_order_flips_channels(model_and_speech):
    model, speech = model_and_speech
    assert torch.equal(generate(model, speech, "eval", output_order="bgr"), generate(model, speech).flip(1))


def test_authors_checkpoint_synthesizes_in_rgb_with_legacy_input(tmp_path, make_generator, authors_layout, audio_dir):
    model = make_generator(64, 0.3, identities=10)
    torch.save(authors_layout(model), tmp_path / "gen_200.pth")
    (written,) = synthesize_files(tmp_path / "gen_200.pth", audio_dir / "a.wav", tmp_path / "out")
    speech = torch.from_numpy(load_speech(audio_dir / "a.wav", 0.3, normalisation="legacy_py2"))[None, None]
    expected = generate(model, speech, "eval").flip(1)[0].numpy()  # trained on BGR: channels swapped back
    expected = np.round(np.clip((expected.transpose(1, 2, 0) + 1) * 127.5, 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(read_png(written), expected)


def test_short_clips_error_or_padding(saved_checkpoint, tmp_path, make_audio, make_noise):
    short = make_audio(tmp_path / "in" / "short.wav", make_noise(3000))
    with pytest.raises(DataError, match="shorter than the 4800 samples") as err:
        synthesize_files(saved_checkpoint, short, tmp_path / "out")
    assert str(short) in str(err.value)
    assert [p.name for p in synthesize_files(saved_checkpoint, short, tmp_path / "out", short="pad")] == ["short.png"]


def test_collect_audio(audio_dir, tmp_path, make_audio, make_noise):
    assert [p.name for p in collect_audio(audio_dir)] == ["a.wav", "b.flac", "c.wav", "d.WAV", "e.wav"]
    assert collect_audio(audio_dir / "a.wav") == [audio_dir / "a.wav"]
    with pytest.raises(DataError, match="not a .wav or .flac file"):
        collect_audio(audio_dir / "notes.txt")
    with pytest.raises(DataError, match="no such audio file or folder"):
        collect_audio(tmp_path / "nothing")
    with pytest.raises(DataError, match="folder holds no .wav or .flac files"):
        collect_audio(audio_dir / "sub")
    make_audio(audio_dir / "a.flac", make_noise(4800))
    with pytest.raises(DataError, match="same name as") as err:
        collect_audio(audio_dir)
    assert "a.wav" in str(err.value) and "a.flac" in str(err.value)


def test_bad_synthesis_options(saved_checkpoint, audio_dir, tmp_path):
    with pytest.raises(DataError, match="batch size must be >= 1"):
        synthesize_files(saved_checkpoint, audio_dir, tmp_path, batch_size=0)
    with pytest.raises(DataError, match="train-mode sampling needs batches of at least 2"):
        synthesize_files(saved_checkpoint, audio_dir, tmp_path, batch_size=1, sampling="train")
    with pytest.raises(DataError, match="unknown sampling mode"):
        synthesize_files(saved_checkpoint, audio_dir, tmp_path, sampling="greedy")
