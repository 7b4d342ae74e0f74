"""Checkpoints: our safetensors + sidecar (bit-exact round trip), the authors' gen_<epoch>.pth layout, and bad files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import generator
from generator.checkpoint import FORMAT, load_generator, save_generator
from generator.errors import CheckpointError
from generator.model import Generator
from generator.runtime import sha256_file


def outputs(model: Generator, speech: torch.Tensor) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return list(model(speech))


def assert_same_state(a: Generator, b: Generator) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name


# --- our format ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, seconds", [(64, 0.3), (128, 1.0)])
def test_round_trip_is_bit_exact(tmp_path, make_generator, speech_batch, size, seconds):
    model = make_generator(size, seconds, identities=3, seed=1)
    path = save_generator(tmp_path / "g.safetensors", model, ["a", "b", "c"], {"data": {"normalisation": "peak"}})
    checkpoint_file = load_generator(path)
    loaded, sidecar = checkpoint_file.model, checkpoint_file.info
    assert_same_state(model, loaded)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.config == model.config
    speech = speech_batch(3, seconds)
    for x, y in zip(outputs(model, speech), outputs(loaded, speech), strict=True):
        assert torch.equal(x, y)
    assert sidecar["identities"] == ["a", "b", "c"]


def test_sidecar_contents(saved_checkpoint):
    sidecar = json.loads(saved_checkpoint.with_suffix(".json").read_text())
    assert sidecar["format"] == FORMAT and sidecar["format_version"] == 1
    assert sidecar["model"] == {"image_size": 64, "audio_seconds": 0.3, "num_identities": 2}
    assert sidecar["identities"] == ["alice", "bob"]
    assert sidecar["weights_dtype"] == "float32"
    assert sidecar["weights_sha256"] == sha256_file(saved_checkpoint)
    assert sidecar["code_version"].startswith(generator.__version__)
    assert sidecar["data"] == {"normalisation": "peak", "output_order": "rgb"}  # the caller's info is kept
    assert sidecar["training"] == {"epochs": 3, "seed": 0}


def test_load_reports_path_and_file_hash(saved_checkpoint):
    loaded = load_generator(saved_checkpoint)
    assert loaded.path == saved_checkpoint and loaded.sha256 == sha256_file(saved_checkpoint)
    assert loaded.identities == ("alice", "bob") and loaded.normalisation == "peak" and loaded.output_order == "rgb"
    assert loaded.describe()["sha256"] == loaded.sha256 and loaded.describe()["training"] == {"epochs": 3, "seed": 0}


def test_a_folder_holding_generator_safetensors_loads(tmp_path, make_generator):
    model = make_generator()
    save_generator(tmp_path / "epoch_0001" / "generator.safetensors", model, ["a", "b"], {})
    loaded = load_generator(tmp_path / "epoch_0001").model
    assert_same_state(model, loaded)


def test_float16_save_loads_as_float32(tmp_path, make_generator, speech_batch):
    model = make_generator()
    path = save_generator(tmp_path / "h.safetensors", model, ["a", "b"], {}, dtype=torch.float16)
    checkpoint_file = load_generator(path)
    loaded, sidecar = checkpoint_file.model, checkpoint_file.info
    assert sidecar["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    speech = speech_batch(2)
    for full, half in zip(outputs(model, speech), outputs(loaded, speech), strict=True):
        assert not torch.equal(full, half)  # float16 really rounded the weights
        assert (full - half).abs().max() <= 1e-2 * full.abs().max()
    with torch.no_grad():
        model.encoder.head[0].bias[0] = 1e6
    with pytest.raises(CheckpointError, match="does not fit in float16"):
        save_generator(tmp_path / "big.safetensors", model, ["a", "b"], {}, dtype=torch.float16)


# --- the authors' layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, seconds", [(64, 1.0), (128, 0.7), (64, 0.3)])
def test_authors_checkpoint_loads_bit_exactly(tmp_path, make_generator, speech_batch, authors_layout, size, seconds):
    model = make_generator(size, seconds, identities=10, seed=2)  # their classifier always has 10 outputs
    state = authors_layout(model)
    assert len(state) == len(model.state_dict())
    path = tmp_path / "gen_10.pth"
    torch.save(state, path)
    checkpoint_file = load_generator(path)
    loaded, sidecar = checkpoint_file.model, checkpoint_file.info
    assert loaded.config == model.config
    assert_same_state(model, loaded)
    speech = speech_batch(4, seconds)
    for x, y in zip(outputs(model, speech), outputs(loaded, speech), strict=True):
        assert torch.equal(x, y)
    assert sidecar["format"] == "authors-pth" and len(sidecar["identities"]) == 10
    assert sidecar["data"] == {"normalisation": "legacy_py2", "output_order": "bgr"}


def test_authors_checkpoint_wrapped_by_data_parallel_loads(tmp_path, make_generator, authors_layout):
    model = make_generator(64, 0.3, identities=10)
    torch.save({"state_dict": {"module." + k: v for k, v in authors_layout(model).items()}}, tmp_path / "gen_0.pth")
    loaded = load_generator(tmp_path / "gen_0.pth").model
    assert_same_state(model, loaded)


# --- bad files -------------------------------------------------------------------------------------------------


def _error(path, *fragments) -> str:
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _rewrite_sidecar(path: Path, **changes) -> None:
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar.update(changes)
    sidecar_path.write_text(json.dumps(sidecar))


def test_missing_checkpoint(tmp_path):
    _error(tmp_path / "none.safetensors", str(tmp_path / "none.safetensors"), "checkpoint not found")


def test_unknown_suffix(checkpoint_copy):
    other = checkpoint_copy.with_suffix(".bin")
    checkpoint_copy.rename(other)
    _error(other, str(other), "unknown checkpoint type")


def test_truncated_safetensors_is_caught_by_the_sidecar_hash(checkpoint_copy):
    data = checkpoint_copy.read_bytes()
    checkpoint_copy.write_bytes(data[: len(data) // 3])
    _error(checkpoint_copy, str(checkpoint_copy), "do not match the SHA-256", "truncated")


@pytest.mark.parametrize("keep", [0.33, 10 / 60e6, 0.0])
def test_truncated_safetensors_without_a_hash(checkpoint_copy, keep):
    data = checkpoint_copy.read_bytes()
    checkpoint_copy.write_bytes(data[: int(len(data) * keep)])
    _rewrite_sidecar(checkpoint_copy, weights_sha256=None)
    _error(checkpoint_copy, str(checkpoint_copy), "not a readable safetensors file, truncated or corrupt")


def test_sha_mismatch(checkpoint_copy):
    data = bytearray(checkpoint_copy.read_bytes())
    data[-5] ^= 0xFF  # still a valid safetensors file, one weight changed
    checkpoint_copy.write_bytes(bytes(data))
    _error(checkpoint_copy, str(checkpoint_copy), "do not match the SHA-256 in gen.json")


def test_missing_sidecar(checkpoint_copy):
    checkpoint_copy.with_suffix(".json").unlink()
    _error(checkpoint_copy, str(checkpoint_copy), "sidecar gen.json is missing")


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "sidecar is not valid JSON"), ('["a list"]', "not a wav2pix-generator sidecar"),
    ('{"format": "something-else"}', "not a wav2pix-generator sidecar"), ("\xff\xfe", "not valid JSON"),
])
def test_invalid_sidecar(checkpoint_copy, content, fragment):
    checkpoint_copy.with_suffix(".json").write_text(content, encoding="latin-1")
    _error(checkpoint_copy, str(checkpoint_copy.with_suffix(".json")), fragment)


@pytest.mark.parametrize("model, fragment", [
    (None, "bad 'model' entry"), ({"image_size": 64}, None), ({"image_size": 64, "audio_seconds": 0.3, "colour": 1},
                                                              "bad 'model' entry"),
])
def test_sidecar_with_a_bad_model_entry(checkpoint_copy, model, fragment):
    sidecar = json.loads(checkpoint_copy.with_suffix(".json").read_text())
    if model is None:
        del sidecar["model"]
    else:
        sidecar["model"] = model
    checkpoint_copy.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError) as err:
        load_generator(checkpoint_copy)
    assert fragment is None or fragment in str(err.value)


def test_identity_list_must_match_the_classifier(checkpoint_copy):
    _rewrite_sidecar(checkpoint_copy, identities=["alice"])
    _error(checkpoint_copy, "identity list does not match num_identities=2")


@pytest.mark.parametrize("model, fragment", [
    ({"image_size": 64, "audio_seconds": 0.3, "num_identities": 3},
     "classifier.layers.3.bias has shape (2,), the configured model expects (3,)"),
    ({"image_size": 64, "audio_seconds": 1.0, "num_identities": 2}, "encoder.head.0.weight has shape (256, 1024)"),
    ({"image_size": 128, "audio_seconds": 0.3, "num_identities": 2}, "not a Wav2Pix generator of this architecture"),
])
def test_shape_mismatch_between_sidecar_and_weights(checkpoint_copy, model, fragment):
    _rewrite_sidecar(checkpoint_copy, model=model, identities=[f"p{i}" for i in range(model["num_identities"])])
    _error(checkpoint_copy, str(checkpoint_copy), fragment)


def test_foreign_safetensors(tmp_path, saved_checkpoint):
    path = tmp_path / "foreign.safetensors"
    save_file({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.bias": torch.zeros(10)}, str(path))
    sidecar = json.loads(saved_checkpoint.with_suffix(".json").read_text())
    sidecar["weights_sha256"] = sha256_file(path)
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    message = _error(path, str(path), "not a Wav2Pix generator of this architecture")
    assert "conv1.weight" in message and "missing" in message


def test_foreign_pth_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, path)
    _error(path, str(path), "not a Wav2Pix generator state dict")


def test_pth_in_our_layout_is_redirected(tmp_path, make_generator):
    path = tmp_path / "ours.pth"
    torch.save(make_generator().state_dict(), path)
    _error(path, str(path), "our parameter layout")


def test_pth_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    _error(path, str(path), "not a state dict of tensors")
    torch.save({"epoch": 3, "weights": {"a": torch.zeros(1)}}, path)
    _error(path, "not a state dict of tensors")


def test_authors_pth_with_a_shape_mismatch(tmp_path, make_generator, authors_layout):
    state = authors_layout(make_generator(64, 1.0, identities=10))
    state["aux_classifier.net.1.weight"] = torch.ones(199)
    torch.save(state, tmp_path / "gen_1.pth")
    _error(tmp_path / "gen_1.pth", "classifier.layers.1.weight has shape (199,)")
    state = authors_layout(make_generator(64, 1.0, identities=10))
    state["audio_embedding.fc.0.weight"] = torch.zeros(256, 2048)
    torch.save(state, tmp_path / "gen_2.pth")
    _error(tmp_path / "gen_2.pth", "encoder FC input 2048 matches none of the audio lengths")
    state = authors_layout(make_generator(64, 1.0, identities=10))
    del state["netG.3.6.module.weight_u"]
    torch.save(state, tmp_path / "gen_3.pth")
    _error(tmp_path / "gen_3.pth", "missing ['decoder.layers.9.parametrizations.weight.0._u']")


def _touch(path: str) -> None:  # what a malicious pickle would run on load
    Path(path).write_text("pickle code ran")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_pth_with_a_pickled_object_is_refused_unexecuted(tmp_path, make_generator, authors_layout):
    marker = tmp_path / "pwned"
    state = authors_layout(make_generator(64, 1.0, identities=10))
    state["extra"] = _Payload(marker)
    path = tmp_path / "gen_10.pth"
    torch.save(state, path)
    _error(path, str(path), "pickled Python objects", "weights_only=True")
    assert not marker.exists()
    # the file really does run code under an unsafe load: the refusal is what protects
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pickle code ran"


def test_truncated_pth(tmp_path, make_generator, authors_layout):
    path = tmp_path / "gen_10.pth"
    torch.save(authors_layout(make_generator(64, 0.3, identities=10)), path)
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 100, 10, 0):
        path.write_bytes(data[:keep])
        _error(path, str(path), "not a PyTorch zip checkpoint (truncated")


def test_legacy_non_zip_pickle_pth_is_refused(tmp_path):
    path = tmp_path / "gen_0.pth"
    with path.open("wb") as handle:
        pickle.dump({"netG.0.module.weight_bar": [1.0, 2.0]}, handle)
    _error(path, str(path), "not a PyTorch zip checkpoint")


def test_included_sidecars_name_no_absolute_paths_and_resolve_from_their_folder():
    """The shipped checkpoints' sidecars: every path relative to the sidecar's folder (or none); the sidecar JSON
    itself is not hashed anywhere (load_generator checks the weights' SHA-256 only)."""
    import json
    from pathlib import PurePosixPath

    from generator.checkpoint import INCLUDED_CHECKPOINT, SIDECAR_PATHS

    for sidecar_path in sorted(INCLUDED_CHECKPOINT.parent.glob("*.json")):
        text = sidecar_path.read_text()
        assert "/work/" not in text and "/tmp/" not in text and "/home/" not in text, sidecar_path
        sidecar = json.loads(text)
        for keys in SIDECAR_PATHS:
            value = sidecar
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                assert not PurePosixPath(value).is_absolute()
                assert (sidecar_path.parent / value).is_file(), (sidecar_path, keys, value)
        assert load_generator(sidecar_path.with_suffix(".safetensors")).info["weights_sha256"]


def test_export_rebases_the_sidecar_paths(tmp_path):
    from generator.checkpoint import rebase_sidecar_paths

    info = {"data": {"manifest": "../data/m.csv"}, "training": {"log": "/abs/run/train_log.jsonl",
                                                                 "config": {"out": "..", "manifest": None}}}
    rebased = rebase_sidecar_paths(info, tmp_path / "run" / "epoch_0003", tmp_path / "shipped")
    assert rebased["data"]["manifest"] == "../run/data/m.csv"
    assert rebased["training"]["config"]["out"] == "../run"
    assert rebased["training"]["config"]["manifest"] is None
    assert rebased["training"]["log"].endswith("abs/run/train_log.jsonl")
    assert info["data"]["manifest"] == "../data/m.csv"
