"""Fixtures for the evalkit tests: a tiny evaluation set, a random generator checkpoint, random Inception weights.

Everything is written by the tests into temporary folders; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from tests.evalkit.support import build_eval_set, random_inception_state


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    torch.save(random_inception_state(), path)
    return path


@pytest.fixture(scope="session")
def eval_manifest(tmp_path_factory) -> Path:
    return build_eval_set(tmp_path_factory.mktemp("evalset"))


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch) -> Path:
    """An empty torch hub (no Inception weights) and feature cache per test; relative paths land in tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def no_report_rendering(monkeypatch) -> None:
    """Runs here test evalkit alone: report rendering (tested on its own) is a stub unless a test installs one."""
    monkeypatch.setattr("reports.render.render", lambda run_dir, figure_folder=None: Path(run_dir) / "report.html")


@pytest.fixture
def evalkit_cli() -> Callable[..., Result]:
    """``evalkit_cli("run", ...)``: run ``evalkit`` in-process (stderr kept apart from stdout)."""
    from evalkit.cli import main

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)

    return run
