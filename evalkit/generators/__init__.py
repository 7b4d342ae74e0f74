"""Generator kinds behind one interface (``evalkit.generators.base``), chosen from the run's options.

==============  ================================================================================================
kind            how it is named
==============  ================================================================================================
``wav2pix``     ``--checkpoint PATH`` (or ``--generator wav2pix --generator-arg checkpoint=PATH``); default: the
                included checkpoint
``python``      ``--generator package.module:factory``; ``factory(**generator_args)`` returns a generator
``entry point`` ``--generator NAME`` where a package declares ``NAME`` in the entry-point group
                ``evalkit.generators`` (``NAME = package.module:factory``)
``images``      ``--generated PATH``: faces a model already produced (``evalkit.generators.images``)
``reference``   ``--generator mean-face | random-face | nearest-face | constant`` (``evalkit.generators.reference``)
==============  ================================================================================================

``--generator-arg key=value`` values are read as YAML scalars (``3`` is an int, ``true`` a bool, ``a.pth`` a string).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from evalkit.errors import EvalError
from evalkit.generators.base import FaceSource
from evalkit.generators.images import ImagesSource
from evalkit.generators.reference import FACE_REFERENCE_NAMES, REFERENCE_NAMES, ReferenceSource
from evalkit.generators.speech import SpeechSource
from evalkit.registry import Registry
from generator.errors import CheckpointError, ConfigError
from generator.runtime import sha256_file

ENTRY_POINT_GROUP = "evalkit.generators"
WAV2PIX = "wav2pix"
DEFAULT_REFERENCE_SIZE = 64  # the included checkpoint's size


def parse_generator_args(items: tuple[str, ...]) -> dict[str, object]:
    """``("k=v", ...)`` -> ``{k: YAML scalar of v}``; raises EvalError for an item without ``=`` or a repeated key."""
    args: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise EvalError(f"--generator-arg {item!r}: expected key=value with a Python identifier as key")
        if key in args:
            raise EvalError(f"--generator-arg {key!r} is given twice")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        args[key] = parsed if isinstance(parsed, (str, int, float, bool)) or parsed is None else value
    return args


def entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed generators of the ``evalkit.generators`` entry-point group, by name.

    Raises ``DuplicateRegistration`` when two entry points share a name, or one takes the name of a built-in
    generator (``wav2pix``, a reference generator): ``--generator NAME`` would otherwise pick one silently."""
    named: Registry[metadata.EntryPoint | None] = Registry("generator")
    named.add(WAV2PIX, None, origin="evalkit (built-in)")
    for name in REFERENCE_NAMES:
        named.add(name, None, origin="evalkit's reference generators (built-in)")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist is not None else "an unknown package"
        named.add(ep.name, ep, origin=f"the {ENTRY_POINT_GROUP} entry point {ep.value} of {package}")
    return {name: ep for name, ep in named.items() if ep is not None}


def _load_factory(spec: str) -> tuple[object, str]:
    """The factory named ``module:attribute`` (or an entry point's name) and the file that defines it."""
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # as ``python -m`` does: modules of the working folder import
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EvalError(f"--generator {spec}: cannot import module {module_name!r} ({exc})") from None
        factory: Any = module
        for part in attribute.split("."):
            factory = getattr(factory, part, None)
            if factory is None:
                raise EvalError(f"--generator {spec}: module {module_name!r} has no {attribute!r}")
        return factory, getattr(module, "__file__", "") or ""
    found = entry_points()
    if spec not in found:
        known = ", ".join(sorted([WAV2PIX, *REFERENCE_NAMES, *found]))
        raise EvalError(f"unknown generator {spec!r}: not a module:factory, nor one of {known}")
    try:
        factory = found[spec].load()
    except Exception as exc:  # a third-party package failing to import: one line, not its traceback
        raise EvalError(f"generator entry point {spec!r} ({found[spec].value}) failed to load: {exc}") from None
    return factory, inspect.getsourcefile(factory) or ""


def _python_source(spec: str, args: dict[str, object]) -> SpeechSource:
    factory, source_file = _load_factory(spec)
    if not callable(factory):
        raise EvalError(f"--generator {spec}: {factory!r} is not callable")
    try:
        model = factory(**args)
    except TypeError as exc:
        raise EvalError(f"--generator {spec}: the factory does not accept these --generator-arg values ({exc})"
                        ) from None
    except Exception as exc:  # the user's factory failing (missing weights...): one line, not its traceback
        raise EvalError(f"--generator {spec}: the factory failed: {type(exc).__name__}: {exc}") from None
    provenance = {"factory": spec, "args": {k: str(v) for k, v in args.items()}}
    if source_file and Path(source_file).is_file():
        provenance["source_file"] = source_file
        provenance["source_sha256"] = sha256_file(source_file)
    return SpeechSource(model, "python", spec, provenance)


def _wav2pix_source(checkpoint: Path | None, args: dict[str, object], device: str, sampling: str) -> SpeechSource:
    from evalkit.generators.wav2pix import Wav2PixGenerator

    unknown = sorted(set(args) - {"checkpoint", "sampling"})
    if unknown:
        raise EvalError(f"generator wav2pix takes --generator-arg checkpoint=PATH and sampling=MODE, not {unknown}")
    if checkpoint is not None and "checkpoint" in args:
        raise EvalError("give the checkpoint once: --checkpoint or --generator-arg checkpoint=...")
    path = checkpoint or (Path(str(args["checkpoint"])) if "checkpoint" in args else None)
    try:
        model = Wav2PixGenerator(path, device, str(args.get("sampling", sampling)))
    except (CheckpointError, ConfigError) as exc:
        raise EvalError(str(exc)) from None
    return SpeechSource(model, WAV2PIX, str(model.checkpoint.path))


def open_source(generator: str | None, args: tuple[str, ...], checkpoint: Path | None, generated: Path | None,
                manifest_folder: Path, device: str = "auto", sampling: str = "eval") -> FaceSource:
    """The face source a run's options name (see the module docstring); raises EvalError for conflicting or bad
    choices, before anything is generated."""
    parsed = parse_generator_args(args)
    if generator is not None and ":" not in generator:
        entry_points()  # a name two generators claim is refused before either is picked
    if generated is not None:
        if generator is not None or checkpoint is not None or parsed:
            raise EvalError("--generated (finished faces) cannot be combined with --generator, --checkpoint or "
                            "--generator-arg")
        return ImagesSource(generated, manifest_folder)
    if generator is None or generator == WAV2PIX:
        return _wav2pix_source(checkpoint, parsed, device, sampling)
    if checkpoint is not None:
        raise EvalError(f"--checkpoint is the wav2pix generator's; with --generator {generator} use "
                        "--generator-arg to pass its files")
    if generator in REFERENCE_NAMES:
        if generator not in FACE_REFERENCE_NAMES:
            raise EvalError(f"--generator {generator}: a descriptor-only reference draws no face, so it cannot be the "
                            f"evaluated generator; it is scored beside one (--references {generator})")
        unknown = sorted(set(parsed) - {"image_size"})
        if unknown:
            raise EvalError(f"reference generator {generator} takes only --generator-arg image_size=N, not {unknown}")
        size = parsed.get("image_size", DEFAULT_REFERENCE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or size < 8:
            raise EvalError(f"--generator-arg image_size must be a whole number of pixels >= 8, got {size!r}")
        return ReferenceSource(generator, size)
    return _python_source(generator, parsed)
