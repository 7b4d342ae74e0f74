"""Reports of evaluation runs and experiments: ``render(run_dir)`` writes report.md and a self-contained report.html
(called by ``evalkit run`` at the end, and by ``evalkit report RUN_DIR``)."""

from reports.render import render

__all__ = ["render"]
