"""Survey app under load: 50 concurrent scripted raters against `survey-app serve` (gunicorn) on loopback.

Each rater consents, reads the pair task's instructions, then for every trial loads the trial page and posts its
answers with Next, as a browser without the page's script does (images are not fetched; the script would also save
each answer on its own as it is given). Measured per backend (SQLite in a temporary folder; PostgreSQL when a server URL is given):
answer submissions per wall second over the whole storm, p50/p99 latency of the answer POSTs (and of the trial
pages), CPU time per answer of the server, the client and the PostgreSQL processes, and an audit of the database
afterwards (acknowledged answers lost or doubled). Client, server and database share this machine's CPUs, so the
figures include the client's own cost. Each backend is measured --repeat times, the backends taking turns; the
summary is the median run (a run on a shared machine varies by +-15 %).

    python benchmarks/survey_load.py [--raters 50] [--trials 32] [--workers N] [--threads N] [--repeat 3]
                                     [--postgres-url URL]

--postgres-url defaults to $SURVEY_TEST_POSTGRES_URL (a database the benchmark migrates and adds a study to).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the rater robot lives with the tests

from survey_app.cli import Workspace
from survey_app.db import default_database_url
from survey_app.manifest import load_run_input
from survey_app.server import default_threads, default_workers
from survey_app.study_builder import StudyOptions, create_study
from tests.survey_app.robot import (
    RaterRun,
    ServerProcess,
    Storm,
    acknowledged_answers,
    audit_answers,
    cpu_seconds,
    write_synthetic_run,
)

IDENTITIES = tuple(f"speaker{index:02d}" for index in range(8))
STORM_TIMEOUT_S = 600


def percentile_ms(latencies_s: list[float], percent: int) -> float:
    return round(1000 * statistics.quantiles(latencies_s, n=100, method="inclusive")[percent - 1], 1)


def prepare_study(workspace: Workspace, trials: int) -> str:
    """A study of `trials` test pairs per session (plus controls and the attention check, no lineups)."""
    # Two photos per identity beyond the test pairs: the controls and the attention check get photos of their own.
    photos = -(-trials // len(IDENTITIES)) + 2
    run_dir = write_synthetic_run(workspace.data_dir / "run", IDENTITIES, photos_per_identity=photos)
    slug = f"load-{secrets.token_hex(4)}"
    options = StudyOptions(
        title="Load test", slug=slug, seed=1, test_pairs=trials, test_trials_per_session=trials, lineup_size=0
    )
    with workspace.migrated_session_factory()() as db:
        create_study(db, load_run_input(run_dir), workspace.image_store, options)
        db.commit()
    return slug


def measure(workspace: Workspace, raters: int, trials: int, workers: int, threads: int) -> dict:
    slug = prepare_study(workspace, trials)
    log = workspace.data_dir / "server.log"
    server = ServerProcess(workspace.data_dir, workspace.database_url, workers, threads, log)
    server.start()
    try:
        server_cpu_s, client_cpu_s, postgres_cpu_s = server.cpu_seconds(), time.process_time(), postgres_cpu_seconds()
        started = time.perf_counter()
        runs = Storm(server.base_url, slug, raters, STORM_TIMEOUT_S).run()
        wall_s = time.perf_counter() - started
        server_cpu_s, client_cpu_s = server.cpu_seconds() - server_cpu_s, time.process_time() - client_cpu_s
        postgres_cpu_s = postgres_cpu_seconds() - postgres_cpu_s
    finally:
        server.stop()
    with workspace.migrated_session_factory()() as db:
        audit = audit_answers(db, slug, acknowledged_answers(runs))
    submissions = len(acknowledged_answers(runs))
    return figures(runs, wall_s) | {
        "server_cpu_ms_per_answer": round(1000 * server_cpu_s / submissions, 2),
        "client_cpu_ms_per_answer": round(1000 * client_cpu_s / submissions, 2),
        "postgres_cpu_ms_per_answer": round(1000 * postgres_cpu_s / submissions, 2),
        "lost": audit.lost,
        "doubled": audit.doubled,
        "rows": audit.stored,
    }


def postgres_cpu_seconds() -> float:
    """User + system CPU time so far of this machine's running PostgreSQL processes (0 without any)."""
    return cpu_seconds(lambda process: process.command == "postgres")


def median_run(runs: list[dict]) -> dict:
    """Per figure, the median over the runs; lost and doubled answers are summed over all runs."""
    summary = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    return summary | {name: sum(run[name] for run in runs) for name in ("lost", "doubled", "network_errors")}


def figures(runs: list[RaterRun], wall_s: float) -> dict:
    """Throughput and latency; an answer is one acknowledged submission (one trial, one or two questions)."""
    answers = [answer.latency_s for answer in acknowledged_answers(runs)]
    pages = [latency for run in runs for latency in run.page_latencies_s]
    return {
        "answers_per_s": round(len(answers) / wall_s, 1),
        "answer_p50_ms": percentile_ms(answers, 50),
        "answer_p99_ms": percentile_ms(answers, 99),
        "page_p50_ms": percentile_ms(pages, 50),
        "page_p99_ms": percentile_ms(pages, 99),
        "answers": len(answers),
        "wall_s": round(wall_s, 2),
        "network_errors": sum(run.network_errors for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--trials", type=int, default=32, help="test pairs per rater (+ 3 control/attention trials)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="server processes (default: CPUs)")
    parser.add_argument("--threads", type=int, help="threads per server process (default: survey-app serve's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend (the summary is their median)")
    parser.add_argument("--postgres-url", default=os.environ.get("SURVEY_TEST_POSTGRES_URL"))
    arguments = parser.parse_args()
    results: dict = {"raters": arguments.raters, "trials_per_rater": arguments.trials + 3}
    results["server_workers"] = arguments.workers
    runs: dict[str, list[dict]] = {"sqlite": []}
    if arguments.postgres_url:
        runs["postgresql"] = []
    else:
        results["postgresql"] = {"skipped": "no server URL (--postgres-url or $SURVEY_TEST_POSTGRES_URL)"}
    with tempfile.TemporaryDirectory() as folder:
        for run in range(1, arguments.repeat + 1):
            for backend, backend_runs in runs.items():
                data_dir = Path(folder) / f"{backend}-{run}"
                data_dir.mkdir()
                url = default_database_url(data_dir) if backend == "sqlite" else arguments.postgres_url
                threads = arguments.threads or default_threads(url)
                settings = (arguments.raters, arguments.trials, arguments.workers, threads)
                backend_runs.append(measure(Workspace(data_dir, url), *settings) | {"threads_per_worker": threads})
                print(f"{backend} run {run}:", backend_runs[-1], flush=True)
    for backend, backend_runs in runs.items():
        results[backend] = median_run(backend_runs) | {"runs": len(backend_runs)}
    results["load_average"] = [round(load, 2) for load in os.getloadavg()]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
