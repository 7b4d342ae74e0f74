"""Dependencies run one way: evalkit computes and writes records, reports reads them. ``reports`` imports nothing of
evalkit but the record-type modules; nothing in evalkit but the command layer (``evalkit/cli.py``) imports
``reports``; the record-type modules themselves import nothing heavy. Imports are read with ``ast``, including
imports inside functions and ``importlib.import_module("...")`` / ``__import__("...")`` calls with a literal name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORD_MODULES = {"evalkit.record", "evalkit.sections"}
COMMAND_LAYER = ROOT / "evalkit" / "cli.py"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a import b`` yields ``a`` and ``a.b``; relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], node.module or ""] if node.level else
                            [node.module or ""]).strip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.add(node.args[0].value)
    return found


def top(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_import_reader_sees_every_form(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    source = tmp_path / "reports" / "sub" / "mod.py"
    source.parent.mkdir(parents=True)
    source.write_text("import evalkit.runner\nfrom evalkit import record\nfrom ..x import y\n"
                      "def f():\n    import importlib\n    importlib.import_module('evalkit.metrics')\n"
                      "    __import__('reports.render')\n")
    assert {"evalkit.runner", "evalkit", "evalkit.record", "reports.x", "reports.x.y", "importlib",
            "evalkit.metrics", "reports.render"} <= imported_modules(source)


def test_reports_import_only_the_record_types_of_evalkit():
    def allowed(name: str) -> bool:  # ``evalkit.record.metric_cell`` is a name inside a record module
        return name == "evalkit" or any(top(name, record) for record in RECORD_MODULES)

    offending = {module_name(path): sorted(name for name in imported_modules(path) if top(name, "evalkit")
                                           and not allowed(name)) for path in python_files("reports")}
    assert not {module: names for module, names in offending.items() if names}


def test_only_the_command_layer_of_evalkit_imports_reports():
    offending = [module_name(path) for path in python_files("evalkit")
                 if path != COMMAND_LAYER and any(top(name, "reports") for name in imported_modules(path))]
    assert not offending
    assert any(top(name, "reports") for name in imported_modules(COMMAND_LAYER)), "the reader saw no import at all"


@pytest.mark.parametrize("module", sorted(RECORD_MODULES))
def test_record_modules_import_nothing_heavy(module):
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT)}).stdout.split()
    heavy = [m for m in loaded if m.split(".")[0] in ("torch", "numpy", "PIL", "matplotlib", "scipy", "dlib", "click",
                                                      "reports")
             or (top(m, "evalkit") and m not in RECORD_MODULES | {"evalkit", "evalkit.errors"})]
    assert not heavy
