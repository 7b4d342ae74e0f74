"""Reports of evaluation runs and experiments: ``reports.render.render(run_dir)`` writes report.md and a
self-contained report.html from the run record (called by ``evalkit run`` at the end, and by ``evalkit report
RUN_DIR``). Reports read evalkit's record types (``evalkit.record``) and compute nothing."""
