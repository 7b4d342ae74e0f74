"""``wav2pix train / synthesize / export``: results, and bad input as one 'error:' line with exit status 2."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import generator.checkpoint
from generator.checkpoint import INCLUDED_CHECKPOINT, load_generator
from generator.runtime import sha256_file


@pytest.fixture
def clips(tmp_path, make_audio, make_noise):
    folder = tmp_path / "clips"
    for i, name in enumerate(["x.wav", "y.flac", "z.wav"]):
        make_audio(folder / name, make_noise(5000 + 100 * i, seed=i))
    return folder


# --- train -----------------------------------------------------------------------------------------------------


def test_train_with_a_config_file_and_overrides(cli, tiny_overrides, tmp_path):
    config = tmp_path / "tiny.yaml"
    out = tmp_path / "run"
    overrides = tiny_overrides(out, epochs=1)
    config.write_text("\n".join(o.replace("=", ": ", 1) for o in overrides[:3]) + "\nepochs: 5\n")
    result = cli("train", "--config", config, *overrides[3:], "epochs=1")
    assert result.exit_code == 0, result.output
    assert f"last checkpoint: {out / 'epoch_0001' / 'generator.safetensors'}" in result.stdout
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 1
    checkpoint_file = load_generator(out / "epoch_0001")
    model, sidecar = checkpoint_file.model, checkpoint_file.info
    assert sidecar["training"]["epochs"] == 1 and model.config.num_identities == 3


@pytest.mark.parametrize("args, fragments", [
    (["colour=red"], ["unknown config key(s) ['colour']"]),
    (["epochs=abc"], ["epochs must be of type int"]),
    (["device=tpu"], ["device: auto, cpu or cuda"]),
])
def test_train_config_errors(cli, cli_error, tiny_overrides, tmp_path, args, fragments):
    cli_error(cli("train", *tiny_overrides(tmp_path / "r"), *args), *fragments)


def test_train_input_errors(cli, cli_error, tiny_overrides, tmp_path, make_csv):
    cli_error(cli("train", "--config", tmp_path / "none.yaml"), "none.yaml", "config file not found")
    cli_error(cli("train", f"manifest={tmp_path / 'm.csv'}"), "m.csv", "manifest not found")
    cli_error(cli("train", "--resume", *tiny_overrides(tmp_path / "fresh")), "nothing to resume")
    header_only = make_csv(tmp_path / "h.csv", ["identity", "face", "audio", "split"])
    cli_error(cli("train", f"manifest={header_only}"), "h.csv", "header but no rows")


def test_train_names_a_corrupt_face(cli, cli_error, make_corpus, tmp_path, tiny_overrides):
    corpus = make_corpus("broken", faces_per_identity=2, splits=lambda k, c: "train")
    corpus.clips[3].face.write_bytes(b"not a png")
    overrides = [o for o in tiny_overrides(tmp_path / "r") if not o.startswith("manifest=")]
    cli_error(cli("train", f"manifest={corpus.manifest}", "train_splits=[train]", *overrides),
              str(corpus.clips[3].face), "not a readable image")


# --- synthesize ------------------------------------------------------------------------------------------------


def test_synthesize(cli, saved_checkpoint, clips, tmp_path):
    result = cli("synthesize", "--checkpoint", saved_checkpoint, "--audio", clips, "--out", tmp_path / "faces",
                 "--batch-size", "2", "--sampling", "dropout", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "wrote 3 image(s)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == ["x.png", "y.png", "z.png"]


def test_synthesize_defaults_to_the_included_checkpoint(cli, saved_checkpoint, clips, tmp_path, monkeypatch):
    monkeypatch.setattr(generator.checkpoint, "INCLUDED_CHECKPOINT", saved_checkpoint)
    result = cli("synthesize", "--audio", clips / "x.wav", "--out", tmp_path / "faces")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "faces" / "x.png").is_file()


@pytest.mark.skipif(not INCLUDED_CHECKPOINT.is_file(), reason=f"no included checkpoint at {INCLUDED_CHECKPOINT} yet")
def test_synthesize_with_the_real_included_checkpoint(cli, tmp_path, make_audio, make_noise):
    checkpoint_file = load_generator()
    model, sidecar = checkpoint_file.model, checkpoint_file.info
    make_audio(tmp_path / "in" / "clip.wav", make_noise(int(16000 * model.config.audio_seconds) + 10))
    result = cli("synthesize", "--audio", tmp_path / "in", "--out", tmp_path / "faces")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "faces" / "clip.png").is_file()
    assert sidecar["weights_sha256"] == sha256_file(INCLUDED_CHECKPOINT)


def test_synthesize_pad_short(cli, cli_error, saved_checkpoint, tmp_path, make_audio, make_noise):
    short = make_audio(tmp_path / "s.wav", make_noise(1000))
    args = ["synthesize", "--checkpoint", saved_checkpoint, "--audio", short, "--out", tmp_path / "faces"]
    cli_error(cli(*args), str(short), "shorter than the 4800 samples")
    assert cli(*args, "--pad-short").exit_code == 0


def test_synthesize_errors(cli, cli_error, checkpoint_copy, clips, tmp_path, make_audio):
    out = tmp_path / "faces"
    cli_error(cli("synthesize", "--checkpoint", tmp_path / "none.safetensors", "--audio", clips, "--out", out),
              "none.safetensors", "checkpoint not found")
    (tmp_path / "empty").mkdir()
    cli_error(cli("synthesize", "--checkpoint", checkpoint_copy, "--audio", tmp_path / "empty", "--out", out),
              "folder holds no .wav or .flac files")
    nan = make_audio(tmp_path / "nan" / "n.wav", np.full(5000, np.nan, np.float32), subtype="FLOAT")
    cli_error(cli("synthesize", "--checkpoint", checkpoint_copy, "--audio", nan, "--out", out), str(nan), "NaN")
    cli_error(cli("synthesize", "--checkpoint", checkpoint_copy, "--audio", clips, "--out", out, "--batch-size", "1",
                  "--sampling", "train"), "train-mode sampling needs batches of at least 2")
    data = bytearray(checkpoint_copy.read_bytes())
    data[-1] ^= 1
    checkpoint_copy.write_bytes(bytes(data))
    cli_error(cli("synthesize", "--checkpoint", checkpoint_copy, "--audio", clips, "--out", out),
              str(checkpoint_copy), "SHA-256")
    assert not out.exists() or not any(out.iterdir())


def test_synthesize_refuses_a_pickle_bearing_pth(cli, cli_error, tmp_path, clips):
    path = tmp_path / "gen_1.pth"
    torch.save({"netG.0.module.weight_bar": torch.zeros(1), "note": {1, 2}}, path)  # a set needs real unpickling
    cli_error(cli("synthesize", "--checkpoint", path, "--audio", clips, "--out", tmp_path / "o"), str(path))


# --- export ----------------------------------------------------------------------------------------------------


def test_export_float16(cli, saved_checkpoint, tmp_path, speech_batch):
    out = tmp_path / "small.safetensors"
    result = cli("export", "--checkpoint", saved_checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    assert "float16" in result.stdout
    assert out.stat().st_size < 0.6 * saved_checkpoint.stat().st_size
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["weights_dtype"] == "float16" and sidecar["identities"] == ["alice", "bob"]
    assert sidecar["exported_from"] == {"path": os.path.relpath(saved_checkpoint, tmp_path),
                                        "sha256": sha256_file(saved_checkpoint)}
    assert sidecar["data"] == {"normalisation": "peak", "output_order": "rgb"}
    assert sidecar["training"] == {"epochs": 3, "seed": 0}
    small = load_generator(out).model
    full = load_generator(saved_checkpoint).model
    for name, value in full.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(small.state_dict()[name], value.half().float()), name


def test_export_float32_is_exact_and_converts_the_authors_format(cli, tmp_path, make_generator, authors_layout):
    model = make_generator(64, 0.3, identities=10)
    torch.save(authors_layout(model), tmp_path / "gen_10.pth")
    out = tmp_path / "ours.safetensors"
    result = cli("export", "--checkpoint", tmp_path / "gen_10.pth", "--out", out, "--dtype", "float32")
    assert result.exit_code == 0, result.output
    checkpoint_file = load_generator(out)
    loaded, sidecar = checkpoint_file.model, checkpoint_file.info
    assert sidecar["data"]["normalisation"] == "legacy_py2" and sidecar["data"]["output_order"] == "bgr"
    assert len(sidecar["identities"]) == 10 and "note" in sidecar
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_export_errors(cli, cli_error, tmp_path, checkpoint_copy):
    cli_error(cli("export", "--checkpoint", tmp_path / "x.pth", "--out", tmp_path / "o.safetensors"),
              "x.pth", "checkpoint not found")
    checkpoint_copy.with_suffix(".json").unlink()
    cli_error(cli("export", "--checkpoint", checkpoint_copy, "--out", tmp_path / "o.safetensors"),
              "sidecar gen.json is missing")
    truncated = tmp_path / "t.pth"
    truncated.write_bytes(b"PK\x03\x04" + bytes(50))
    cli_error(cli("export", "--checkpoint", truncated, "--out", tmp_path / "o.safetensors"), "t.pth", "truncated")
