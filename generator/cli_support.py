"""The command-line error convention shared by every ``wav2pix`` command: one ``error: ...`` line, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from generator.errors import Wav2PixError


def invoke_reporting_errors(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    """Run a click command; a Wav2PixError or OSError becomes one line on stderr and exit status 2, no traceback."""
    try:
        return invoke(ctx)
    except Wav2PixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # e.g. an output path that exists as a file, a full disk, no permission
        click.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        sys.exit(2)


class FriendlyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        return invoke_reporting_errors(super().invoke, ctx)


class FriendlyCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        return invoke_reporting_errors(super().invoke, ctx)
