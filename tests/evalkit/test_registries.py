"""Every registry refuses a name registered twice and names both places: metrics, feature extractors, reference
generators, experiments and the generators chosen by name (built-in kinds and entry points)."""

from __future__ import annotations

import click
import pytest

from evalkit.experiments.cli import EXPERIMENTS, experiment_group
from evalkit.features import EXTRACTORS, _load_builtin_extractors, register_extractor
from evalkit.generators import entry_points, open_source
from evalkit.generators.reference import BUILDERS, DESCRIPTIONS, builds
from evalkit.metrics import METRICS, Metric, all_metrics, register
from evalkit.registry import DuplicateRegistration, Registry
from tests.support import check_cli_error


def test_a_registry_refuses_a_second_registration_and_keeps_the_first():
    registry: Registry[int] = Registry("widget")
    assert registry.add("a", 1, origin="module one") == 1
    with pytest.raises(DuplicateRegistration, match=r"widget 'a' is registered twice: by module one and by module two"):
        registry.add("a", 2, origin="module two")
    assert registry == {"a": 1}
    assert registry.add("b", 2, origin="module two") == 2


def test_a_metric_name_registered_twice():
    fid = all_metrics()["fid"]
    copy = Metric(name="fid", description="a copy", requires="", columns=(), extractors=lambda options: (),
                  evaluate=lambda ctx, split: {})
    with pytest.raises(DuplicateRegistration, match=r"metric 'fid' is registered twice: by module "
                                                    r"evalkit\.metrics\.fid and by module tests\.evalkit"):
        register(copy)
    assert METRICS["fid"] is fid


def test_a_feature_extractor_name_registered_twice():
    _load_builtin_extractors()
    inception = EXTRACTORS["inception"]

    class Other:
        pass

    with pytest.raises(DuplicateRegistration, match=r"feature extractor 'inception' is registered twice: by "
                                                    r"evalkit\.features\.inception\.\w+ and by .*Other"):
        register_extractor("inception")(Other)
    assert EXTRACTORS["inception"] is inception


def test_a_reference_generator_name_registered_twice():
    constant = BUILDERS["constant"]
    with pytest.raises(DuplicateRegistration, match=r"reference generator 'constant' is registered twice: by "
                                                    r"evalkit\.generators\.reference\.constant and by tests\.evalkit"):
        builds("constant")(lambda job: None)
    assert BUILDERS["constant"] is constant and set(BUILDERS) <= set(DESCRIPTIONS)


def test_an_experiment_name_registered_twice():
    resolution = EXPERIMENTS["resolution"]
    with pytest.raises(DuplicateRegistration, match="experiment 'resolution' is registered twice"):
        EXPERIMENTS.add("resolution", click.Command("resolution"), origin="module elsewhere")
    assert EXPERIMENTS["resolution"] is resolution
    assert sorted(experiment_group.commands) == sorted(EXPERIMENTS)


def _install(site, package: str, entry_points_txt: str) -> None:
    """A distribution ``package`` on ``site`` declaring ``entry_points_txt`` (its module need not exist)."""
    info = site / f"{package}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points_txt)


@pytest.mark.parametrize("installed, fragment", [
    ({"pkg_one": "toy = pkg_one:make", "pkg_two": "toy = pkg_two:make"},
     "generator 'toy' is registered twice: by the evalkit.generators entry point pkg_"),
    ({"pkg_one": "mean-face = pkg_one:make"},
     "generator 'mean-face' is registered twice: by evalkit's reference generators (built-in) and by the "
     "evalkit.generators entry point pkg_one:make of pkg_one"),
    ({"pkg_one": "wav2pix = pkg_one:make"}, "generator 'wav2pix' is registered twice: by evalkit (built-in)"),
])
def test_a_generator_name_claimed_twice(tmp_path, monkeypatch, installed, fragment):
    for package, line in installed.items():
        _install(tmp_path / "site", package, f"[evalkit.generators]\n{line}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(DuplicateRegistration) as err:
        entry_points()
    assert fragment in str(err.value)
    name = next(iter(installed.values())).split(" = ")[0]
    with pytest.raises(DuplicateRegistration):
        open_source(name, (), None, None, tmp_path)


def test_evalkit_run_reports_a_generator_name_claimed_twice(evalkit_cli, eval_manifest, tmp_path, monkeypatch):
    _install(tmp_path / "site", "pkg_one", "[evalkit.generators]\nconstant = pkg_one:make\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = evalkit_cli("run", "--generator", "constant", "--data", eval_manifest, "--out", tmp_path / "r",
                         "--device", "cpu")
    check_cli_error(result, "generator 'constant' is registered twice", "rename one of them")
    assert not (tmp_path / "r").exists()
