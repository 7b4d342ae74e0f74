"""``evalkit report RUN_DIR``: (re)write a run folder's report.md and report.html."""

from __future__ import annotations

from pathlib import Path

import click

from generator.cli_support import FriendlyCommand


@click.command("report", cls=FriendlyCommand)
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report_cmd(run_dir: Path) -> None:
    """Write RUN_DIR/report.md and a self-contained RUN_DIR/report.html (results, baselines, experiments)."""
    from reports.render import render

    html = render(run_dir)
    click.echo(f"report: {html}")
    click.echo(f"report: {html.with_suffix('.md')}")
