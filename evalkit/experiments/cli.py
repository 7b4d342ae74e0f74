"""The ``evalkit experiment`` group (one sub-command per experiment module) and ``evalkit compare``."""

from __future__ import annotations

import click

from evalkit.experiments import (
    audio_length,
    averages,
    compare,
    interpolation,
    resolution,
    unseen_identities,
)
from evalkit.registry import Registry
from generator.cli_support import FriendlyGroup


@click.group("experiment", cls=FriendlyGroup)
def experiment_group() -> None:
    """The seed's experiments; each adds a section (tables, figures) to a report folder (see --out) and renders it."""


EXPERIMENTS: Registry[click.Command] = Registry("experiment")
for module in (audio_length, resolution, interpolation, averages, unseen_identities):
    EXPERIMENTS.add(str(module.command.name), module.command, origin=f"module {module.__name__}")
    experiment_group.add_command(module.command)

compare_cmd = compare.command
