"""Fixtures for the report and experiment tests: a tiny evaluation set, tiny random checkpoints, and one real
``evalkit run`` on them (dlib metrics, plus FID without weights so that it is reported unavailable)."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from evalkit.runner import run
from tests.evalkit.support import build_eval_set
from tests.reports.support import options, save_tiny_checkpoint, write_train_log


@pytest.fixture(scope="session")
def isolated_home(tmp_path_factory) -> Path:
    """An empty torch hub (no Inception weights) for the whole session."""
    home = tmp_path_factory.mktemp("home")
    with mock.patch.dict(os.environ, {"TORCH_HOME": str(home / "torch"), "XDG_CACHE_HOME": str(home / "cache")}):
        yield home


@pytest.fixture(scope="session")
def eval_set(tmp_path_factory) -> Path:
    """Faces of alice and bob with 0.7 s clips (long enough for 0.3 and 0.7 s checkpoints)."""
    return build_eval_set(tmp_path_factory.mktemp("evalset"), seconds=0.7)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    return save_tiny_checkpoint(folder, log=write_train_log(folder / "train" / "train_log.jsonl"))


@pytest.fixture(scope="session")
def run_dir(isolated_home, checkpoint, eval_set, tmp_path_factory) -> Path:
    """A finished ``evalkit run`` folder (no report yet); tests copy it before changing it."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run(options(checkpoint, eval_set, out), "evalkit run (tests/reports fixture)")
    return out


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / "run"))


@pytest.fixture
def study_run(run_copy) -> Path:
    """A copy of the run with a simulated study imported (``human_study.json``)."""
    from evalkit.record import RESULTS_FILE, read_record
    from evalkit.study import import_study, read_study_export
    from tests.reports.study_fixture import write_study_export

    document = read_record(run_copy / RESULTS_FILE)
    export = read_study_export(write_study_export(run_copy.parent / "study", document["clips"]))
    import_study(run_copy, document, export)
    return run_copy
