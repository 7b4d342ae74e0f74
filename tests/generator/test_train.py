"""Training on tiny data (64 px, 0.3 s, batch 8, CPU): L1 goes down, logs, checkpoints, sidecar, bit-exact resume."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from generator.checkpoint import load_generator, load_tensors
from generator.data.manifest import read_manifest
from generator.errors import CheckpointError, ConfigError
from generator.runtime import pick_device, sha256_file
from generator.training import TrainConfig, Wav2PixTrainer

EPOCHS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_overrides):
    """One 3-epoch run with a checkpoint every epoch, shared by the tests below (read-only)."""
    out = tmp_path_factory.mktemp("train") / "run"
    config = TrainConfig.load(None, tiny_overrides(out, epochs=EPOCHS, checkpoint_every=1))
    trainer = Wav2PixTrainer(config)
    last = trainer.train()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return trainer, out, last, log


def test_a_few_epochs_lower_l1(run):
    _, _, _, log = run
    l1 = [r["g_loss_l1"] for r in log]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert l1[-1] < l1[0] - 0.01, l1
    assert all(b < a for a, b in itertools.pairwise(l1)), l1


def test_log_has_every_loss_term_and_score(run):
    _, _, _, log = run
    for record in log:
        for key in ("d_loss", "d_loss_real", "d_loss_fake", "d_loss_wrong", "g_loss", "g_loss_adversarial",
                    "g_loss_feature_matching", "g_loss_l1", "g_loss_classifier", "d_score_real", "d_score_fake",
                    "d_score_wrong", "seconds", "pairs", "pairs_per_second"):
            assert isinstance(record[key], float | int), key
        assert record["pairs"] == 18  # 18 pairs, batches of 8, 8 and 2: none dropped
        assert record["d_loss"] == pytest.approx(record["d_loss_real"] + record["d_loss_fake"] + record["d_loss_wrong"])
        expected_g = (record["g_loss_adversarial"] + 100 * record["g_loss_feature_matching"]
                      + 50 * record["g_loss_l1"] + 20 * record["g_loss_classifier"])
        assert record["g_loss"] == pytest.approx(expected_g, rel=1e-5)


def test_trainer_follows_the_paper_settings(run):
    trainer, _, _, _ = run
    assert trainer.G.config.num_identities == 3  # from the data, not a hard-coded 10
    assert trainer.identities == ["person0", "person1", "person2"]
    assert trainer.opt_d.param_groups[0]["lr"] == 4e-4 and trainer.opt_g.param_groups[0]["lr"] == 1e-3  # override
    assert trainer.opt_d.param_groups[0]["betas"] == (0.5, 0.999) == trainer.opt_g.param_groups[0]["betas"]
    assert len(trainer.labels) == 18  # train and seen
    defaults = TrainConfig(manifest="m")
    assert (defaults.batch_size, defaults.lr_d, defaults.lr_g, defaults.real_label) == (64, 4e-4, 1e-4, 0.9)
    assert (defaults.feature_matching_weight, defaults.l1_weight, defaults.classifier_weight) == (100, 50, 20)


def test_training_batches_pair_each_clip_with_a_wrong_face_of_another_identity(tiny_overrides, tmp_path):
    trainer = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(tmp_path / "r", epochs=1)))
    faces_of = {lab: trainer.faces[trainer.labels == lab] for lab in range(3)}
    for index in trainer.batches():
        batch = trainer.make_batch(index)
        assert torch.equal(batch.face, trainer.faces[index]) and torch.equal(batch.label, trainer.labels[index])
        for wrong, label in zip(batch.wrong, batch.label.tolist(), strict=True):
            assert not any(torch.equal(wrong, f) for f in faces_of[label])
            assert any(torch.equal(wrong, f) for lab in range(3) if lab != label for f in faces_of[lab])


def test_checkpoint_folders_and_samples(run):
    trainer, out, last, _ = run
    assert last == out / "epoch_0003"
    assert (out / "latest").read_text().strip() == "epoch_0003"
    for epoch in (1, 2, 3):
        folder = out / f"epoch_{epoch:04d}"
        for name in ("generator.safetensors", "generator.json", "train_state.safetensors", "train_state.json",
                     "samples.png"):
            assert (folder / name).is_file(), folder / name
    grid = Image.open(out / "epoch_0003" / "samples.png")
    assert grid.size == (64 * len(trainer.sample_indices), 128)
    assert sorted(trainer.labels[trainer.sample_indices].tolist()) == [0, 1, 2]  # one per identity


def test_training_sidecar_has_the_provenance(run, train_manifest):
    trainer, out, _, _ = run
    path = out / "epoch_0003" / "generator.safetensors"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["model"] == {"image_size": 64, "audio_seconds": 0.3, "num_identities": 3}
    assert sidecar["identities"] == ["person0", "person1", "person2"]
    assert sidecar["weights_sha256"] == sha256_file(path)
    assert sidecar["code_version"]
    data = sidecar["data"]
    assert data["normalisation"] == "peak" and data["fix_bgr"] is True and data["output_order"] == "rgb"
    folder = path.parent
    # paths relative to the sidecar's folder: valid wherever the run is moved, naming no machine's folders
    assert (folder / data["manifest"]).resolve() == train_manifest.resolve()
    assert not Path(data["manifest"]).is_absolute()
    assert (folder / sidecar["training"]["log"]).resolve() == (out / "train_log.jsonl").resolve()
    assert (folder / sidecar["training"]["config"]["out"]).resolve() == out.resolve()
    assert str(out.parent) not in json.dumps(sidecar)
    assert data["manifest_sha256"] == read_manifest(train_manifest).select(["train", "seen"]).content_hash()
    assert sidecar["training"]["epochs"] == 3 and sidecar["training"]["seed"] == 0
    assert sidecar["training"]["config"]["batch_size"] == 8
    model = load_generator(path).model
    for name, value in trainer.G.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_resume_continues_bit_exactly(run, tiny_overrides, tmp_path):
    """Stop after epoch 2, resume to 3: the same weights and losses as the uninterrupted run."""
    _, out, _, log = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "epoch_0003")
    (copy / "latest").write_text("epoch_0002\n")
    (copy / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log[:2]))
    trainer = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(copy, epochs=EPOCHS, checkpoint_every=1)))
    last = trainer.train(resume=True)
    assert last == copy / "epoch_0003"
    resumed = [json.loads(line) for line in (copy / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for key in ("d_loss", "g_loss", "g_loss_l1", "d_score_wrong"):
        assert resumed[2][key] == log[2][key], key
    a = load_generator(out / "epoch_0003").model.state_dict()
    b = load_generator(copy / "epoch_0003").model.state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_checkpoints_keep_the_layout_running_jobs_resume_from(run):
    """The checkpoint layout of the code before the training split (tests/generator/checkpoint_layout.json, written
    by that code): the same files, sidecar sections, train_state keys, dtypes and shapes, so ``--resume`` of a job
    started before a code update reads its checkpoints."""
    _, out, _, _ = run
    layout = json.loads((Path(__file__).parent / "checkpoint_layout.json").read_text())
    folder = out / "epoch_0001"
    assert sorted(p.name for p in folder.iterdir()) == layout["files"]
    assert sorted(json.loads((folder / "train_state.json").read_text())) == layout["train_state_json_keys"]
    sidecar = json.loads((folder / "generator.json").read_text())
    assert sorted(sidecar) == layout["sidecar_keys"]
    assert sorted(sidecar["data"]) == layout["sidecar_data_keys"]
    assert sorted(sidecar["training"]) == layout["sidecar_training_keys"]
    state = load_tensors(folder / "train_state.safetensors")
    written = {k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in state.items()}
    assert written == layout["train_state_tensors"]


def test_resume_when_finished_does_nothing_more(run, tiny_overrides, tmp_path):
    _, out, _, _ = run
    copy = tmp_path / "done"
    shutil.copytree(out, copy)
    trainer = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(copy, epochs=EPOCHS)))
    assert trainer.train(resume=True) is None
    assert trainer.epoch == 3 and len((copy / "train_log.jsonl").read_text().splitlines()) == 3


def test_resume_without_a_checkpoint(tiny_overrides, tmp_path):
    trainer = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(tmp_path / "empty", epochs=1)))
    with pytest.raises(CheckpointError, match="nothing to resume"):
        trainer.train(resume=True)


def test_resume_with_a_different_model(run, tiny_overrides, tmp_path):
    _, out, _, _ = run
    copy = tmp_path / "other"
    shutil.copytree(out, copy)
    trainer = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(copy, epochs=5, image_size=128)))
    with pytest.raises(CheckpointError, match="differs from the config"):
        trainer.resume()


def test_max_minutes_stops_with_a_checkpoint(tiny_overrides, tmp_path):
    trainer = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(tmp_path / "r", epochs=50, max_minutes=1e-6,
                                                                   checkpoint_every=100)))
    assert trainer.train() == tmp_path / "r" / "epoch_0001"
    assert trainer.epoch == 1


def test_same_seed_same_initial_weights(tiny_overrides, tmp_path):
    a = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(tmp_path / "a", seed=5)))
    b = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(tmp_path / "b", seed=5)))
    c = Wav2PixTrainer(TrainConfig.load(None, tiny_overrides(tmp_path / "c", seed=6)))
    assert all(torch.equal(x, y) for x, y in zip(a.G.parameters(), b.G.parameters(), strict=True))
    assert not torch.equal(a.G.decoder.layers[0].parametrizations.weight.original,
                           c.G.decoder.layers[0].parametrizations.weight.original)
    assert torch.equal(a.batches()[0], b.batches()[0])


# --- configuration ---------------------------------------------------------------------------------------------


def test_config_file_and_overrides(tmp_path):
    config_file = tmp_path / "conf" / "c.yaml"
    config_file.parent.mkdir()
    config_file.write_text("manifest: ../m.csv\nout: runs/x\nepochs: 7\nbetas: [0.4, 0.9]\n")
    config = TrainConfig.load(config_file, ["epochs=9", "normalisation=legacy_py2", "out=rel/out"])
    assert config.epochs == 9 and config.betas == [0.4, 0.9] and config.normalisation == "legacy_py2"
    assert config.manifest == str((tmp_path / "m.csv").resolve())  # relative to the config file
    assert config.out.endswith("rel/out")  # overrides: relative to the working directory


def test_shipped_config_is_the_paper_setting():
    from pathlib import Path

    import generator

    config = TrainConfig.load(Path(generator.__file__).parent / "configs" / "wav2pix_64px_1s.yaml")
    assert (config.image_size, config.audio_seconds, config.batch_size, config.epochs) == (64, 1.0, 64, 201)
    assert (config.lr_d, config.lr_g, config.betas) == (4e-4, 1e-4, [0.5, 0.999])


@pytest.mark.parametrize("overrides, fragment", [
    (["colour=red"], "unknown config key(s) ['colour']"),
    (["epochs"], "is not key=value"),
    ([], "no manifest given"),
    (["manifest=m.csv", "epochs=0"], "epochs must be >= 1"),
    (["manifest=m.csv", "batch_size=1"], "batch_size must be >= 2"),
    (["manifest=m.csv", "normalisation=rms"], "normalisation must be peak or legacy_py2"),
    (["manifest=m.csv", "device=tpu"], "device: auto, cpu or cuda"),
    (["manifest=m.csv", "image_size=96"], "image size must be one of"),
    (["manifest=m.csv", "audio_seconds=4"], "audio length must be one of"),
    (["manifest=m.csv", "epochs=abc"], "epochs must be of type int, got 'abc'"),
    (["manifest=m.csv", "lr_g=fast"], "lr_g must be of type float, got 'fast'"),
    (["manifest=m.csv", "fix_bgr=maybe"], "fix_bgr must be of type bool"),
    (["manifest=m.csv", "batch_size=8.5"], "batch_size must be of type int"),
    (["manifest=m.csv", "train_splits=train"], "train_splits must be of type list[str]"),
    (["manifest=m.csv", "betas=[0.5]"], "betas must be two numbers in [0, 1)"),
    (["manifest=m.csv", "betas=[0.5, 1.5]"], "betas must be two numbers in [0, 1)"),
])
def test_bad_configs(overrides, fragment):
    with pytest.raises((ConfigError, CheckpointError)) as err:
        TrainConfig.load(None, overrides)
    assert fragment in str(err.value)


def test_numbers_yaml_reads_as_strings_are_parsed():
    """PyYAML reads 1e-4 (no dot) as a string; a float setting must still get a number."""
    config = TrainConfig.load(None, ["manifest=m.csv", "lr_g=1e-4", "max_minutes=5e-1", "real_label=1"])
    assert config.lr_g == 1e-4 and config.max_minutes == 0.5 and config.real_label == 1


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        TrainConfig.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.load(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="a config is a mapping"):
        TrainConfig.load(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_a_gpu():
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU is available"):
        pick_device("cuda")
