"""Training options: the dataclass, its YAML file with ``key=value`` overrides, and their checks."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from generator.errors import ConfigError
from generator.model import ModelConfig

PATH_KEYS = ("manifest", "out")  # resolved against the config file's folder (or the working folder for overrides)


@dataclass
class TrainConfig:
    manifest: str = ""
    out: str = "runs/train"
    image_size: int = 64
    audio_seconds: float = 1.0
    normalisation: str = "peak"
    fix_bgr: bool = True
    train_splits: list[str] = field(default_factory=lambda: ["train", "seen"])
    epochs: int = 201
    batch_size: int = 64
    lr_d: float = 4e-4
    lr_g: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    real_label: float = 0.9
    feature_matching_weight: float = 100.0
    l1_weight: float = 50.0
    classifier_weight: float = 20.0
    seed: int = 0
    checkpoint_every: int = 10
    device: str = "auto"
    max_minutes: float | None = None
    sample_count: int = 8

    @classmethod
    def load(cls, path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
        """Read a YAML config and apply ``key=value`` overrides (values parsed as YAML)."""
        raw: dict[str, Any] = {}
        base = Path.cwd()
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: a config is a mapping of key: value")
            raw = {k: _resolve(v, path.parent) if k in PATH_KEYS and v else v for k, v in raw.items()}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"override {item!r} is not key=value")
            parsed = yaml.safe_load(value)
            raw[key.strip()] = _resolve(parsed, base) if key.strip() in PATH_KEYS else parsed
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        self._check_types()
        if not self.manifest:
            raise ConfigError("no manifest given (config key 'manifest' or override manifest=PATH)")
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2 (BatchNorm needs two samples)"),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (len(self.betas) == 2 and all(isinstance(b, int | float) and 0 <= b < 1 for b in self.betas),
             "betas must be two numbers in [0, 1) (Adam's beta1, beta2)"),
            (self.normalisation in ("peak", "legacy_py2"), "normalisation must be peak or legacy_py2"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device: auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        ModelConfig(self.image_size, self.audio_seconds)  # validates size and length

    def _check_types(self) -> None:
        """Each value has its field's type; YAML reads '1e-4' (no dot) as a string, so numbers in strings are parsed."""
        kinds: dict[object, tuple[type, ...]] = {
            "int": (int,), "float": (int, float), "float | None": (int, float, type(None)), "bool": (bool,),
            "str": (str,), "list[str]": (list,), "list[float]": (list,)}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "float | None") and isinstance(value, str):
                with contextlib.suppress(ValueError):  # not a number: the type check below says so
                    value = float(value)
                setattr(self, f.name, value)
            allowed = kinds.get(f.type, (object,))
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ConfigError(f"{f.name} must be of type {f.type}, got {value!r}")


def _resolve(value: Any, base: Path) -> str:
    return str((base / str(value)).resolve()) if not Path(str(value)).is_absolute() else str(value)
