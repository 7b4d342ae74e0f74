"""The rater robot: load and behaviour testing over real HTTP with scripted raters, a `survey-app serve` process, and an audit of the stored answers.

Used by the concurrency and crash tests and by benchmarks/survey_load.py. A scripted rater (stdlib http.client)
does what a browser does: it opens the study link, consents, reads a task's instructions when the server sends it
there, then for every trial loads the trial page and posts its answers with Next (the form the Next button sends,
with the JSON reply that the page's script asks for), until the server sends it to the completion page. (A browser
with the page's script also saves each answer on its own as it is given: one more request per question, not
modelled here.) Network failures
are retried on the same step: answers are idempotent, so a retried submit is harmless, and a retried start at worst
leaves an empty session behind. Only a 2xx answer response counts as acknowledged.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import soundfile
from PIL import Image as PilImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from survey_app.models import Answer, Rater, Study

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CONSENT_VERSION = re.compile(r'name="consent_version" value="([^"]+)"')
START_NONCE = re.compile(r'name="start_nonce" value="([^"]+)"')
TASK_INSTRUCTIONS = re.compile(r"/r/[^/]+/tasks/[\w-]+$")
TRIAL_ACTION = re.compile(r'action="(/r/[^"]+/answers)"')
QUESTION = re.compile(r'data-question="(\w+)"')
ATTENTION_VALUE = re.compile(r"please select (\d)")
TOKEN_IN_LOCATION = re.compile(r"/r/([^/]+)/")
RETRY_PAUSE_S = 0.1
TCP_ESTABLISHED = "01"  # the state column of /proc/net/tcp
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class UnexpectedResponse(RuntimeError):
    """The server answered with a status the scripted rater cannot continue from."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    text: str
    body: bytes = b""


@dataclass(frozen=True)
class AcknowledgedAnswer:
    """Answers the server acknowledged (2xx) for one trial, with the request's latency."""

    trial_id: str
    answers: dict[str, str]
    latency_s: float


@dataclass
class RaterRun:
    token: str = ""
    acknowledged: list[AcknowledgedAnswer] = field(default_factory=list)
    page_latencies_s: list[float] = field(default_factory=list)
    network_errors: int = 0
    completed: bool = False


def choose_answers(kind: str | None, questions: list[str], html: str) -> dict[str, str]:
    """A careful rater: follows the attention check, varies its ratings, and when told the trial's `kind` (a test
    looks it up on the server: the page does not say it) recognises the controls correctly."""
    answers = {"quality": str(1 + zlib.crc32(html.encode()) % 5), "recognition": "not_sure", "lineup": "1"}
    attention = ATTENTION_VALUE.search(html)
    if attention:
        answers["quality"] = attention.group(1)
    if kind == "control_same":
        answers["recognition"] = "yes"
    if kind == "control_different":
        answers["recognition"] = "no"
    return {question: answers[question] for question in questions}


class HttpSession:
    """One keep-alive connection with a cookie jar; every request is retried on network errors until `deadline`."""

    def __init__(self, base_url: str, deadline: float, run: RaterRun) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname, parts.port
        self._deadline = deadline
        self._run = run
        self._cookies: dict[str, str] = {}
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[Response, float]:
        """The response and its latency in seconds (of the attempt that got through)."""
        while True:
            started = time.perf_counter()
            try:
                return self._send(method, path, form), time.perf_counter() - started
            except NETWORK_ERRORS:
                self.close()
                self._run.network_errors += 1
                if time.monotonic() > self._deadline:
                    raise
                time.sleep(RETRY_PAUSE_S)

    def _send(self, method: str, path: str, form: dict[str, str] | None) -> Response:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        headers = {"Accept": "application/json" if method == "POST" else "text/html"}
        if self._cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self._cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self._connection.request(method, path, body=body, headers=headers)
        raw = self._connection.getresponse()
        body = raw.read()
        text = body.decode(errors="replace")
        for cookie in raw.headers.get_all("Set-Cookie") or ():
            name, _, rest = cookie.partition("=")
            self._cookies[name] = rest.split(";", 1)[0]
        return Response(raw.status, dict(raw.headers.items()), text, body)


def _expect(response: Response, statuses: tuple[int, ...], step: str) -> Response:
    if response.status not in statuses:
        raise UnexpectedResponse(f"{step}: HTTP {response.status}: {response.text[:200]}")
    return response


def rate_study(
    base_url: str,
    slug: str,
    deadline: float,
    run: RaterRun | None = None,
    on_acknowledged: Callable[[], None] | None = None,
) -> RaterRun:
    """One rater from consent to completion code; `run` (filled in as it goes) is also returned."""
    run = run if run is not None else RaterRun()
    session = HttpSession(base_url, deadline, run)
    try:
        csrf = _consent(session, slug, run)
        while _answer_current_trial(session, run, csrf, on_acknowledged):
            pass
        run.completed = True
        return run
    finally:
        session.close()


def _consent(session: HttpSession, slug: str, run: RaterRun) -> str:
    """Opens the study link and consents; sets `run.token` and returns the CSRF token."""
    landing, _ = session.request("GET", f"/s/{slug}")
    html = _expect(landing, (200,), "consent page").text
    csrf = CSRF_META.search(html).group(1)
    consent = {
        "csrf_token": csrf,
        "consent": "agree",
        "consent_version": CONSENT_VERSION.search(html).group(1),
        "start_nonce": START_NONCE.search(html).group(1),
    }
    started, _ = session.request("POST", f"/s/{slug}/start", consent)
    run.token = TOKEN_IN_LOCATION.search(_expect(started, (302,), "start").headers["Location"]).group(1)
    return csrf


def _answer_current_trial(
    session: HttpSession, run: RaterRun, csrf: str, on_acknowledged: Callable[[], None] | None
) -> bool:
    """Loads the current trial and answers it; False once the server sends the rater to the completion page."""
    page, latency = session.request("GET", f"/r/{run.token}/trial")
    run.page_latencies_s.append(latency)
    if _expect(page, (200, 302), "trial page").status == 302:
        if not TASK_INSTRUCTIONS.search(page.headers["Location"]):
            return False
        instructions, _ = session.request("GET", urlsplit(page.headers["Location"]).path)
        _expect(instructions, (200,), "task instructions")
        page, latency = session.request("GET", f"/r/{run.token}/trial?intro=done")
        run.page_latencies_s.append(latency)
        _expect(page, (200,), "trial page")
    answers = choose_answers(None, QUESTION.findall(page.text), page.text)
    action = TRIAL_ACTION.search(page.text).group(1)
    form = {"csrf_token": csrf, "rt_ms": "1000", "next": "1", **answers}
    posted, latency = session.request("POST", action, form)
    stored = json.loads(_expect(posted, (200,), "answer").text)["answers"]
    trial_id = action.split("/trials/")[1].split("/")[0]
    run.acknowledged.append(AcknowledgedAnswer(trial_id, stored, latency))
    if on_acknowledged is not None:
        on_acknowledged()
    return True


@dataclass
class Storm:
    """Many scripted raters at once; `acknowledged_count` can be watched while it runs."""

    base_url: str
    slug: str
    raters: int
    timeout_s: float
    runs: list[RaterRun] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _acknowledged: int = 0

    @property
    def acknowledged_count(self) -> int:
        with self._lock:
            return self._acknowledged

    def _count_acknowledged(self) -> None:
        with self._lock:
            self._acknowledged += 1

    def run(self) -> list[RaterRun]:
        """Runs every rater in its own thread; re-raises the first rater's failure after all have finished."""
        deadline = time.monotonic() + self.timeout_s
        self.runs = [RaterRun() for _ in range(self.raters)]
        with ThreadPoolExecutor(max_workers=self.raters) as pool:
            futures = [
                pool.submit(rate_study, self.base_url, self.slug, deadline, run, self._count_acknowledged)
                for run in self.runs
            ]
        for future in futures:
            future.result()
        return self.runs


def write_synthetic_run(
    folder: Path,
    identities: Sequence[str],
    photos_per_identity: int = 2,
    groups: bool = False,
    audio_seconds: float | None = None,
    audio_format: str = "wav",
    generated_shift: int = 0,
) -> Path:
    """A run folder of tiny PNG pairs: identities alternate between the test and val splits; returns `folder`.

    With `audio_seconds`, the contract's optional columns too: `clip` (`<split>/<identity>/clip_<n>`) and `audio`
    (a mono 16 kHz tone of that length per clip, pitched by identity, in `audio_format`). `generated_shift` changes
    the generated faces' shades, so that two runs of one data set differ."""
    header = "split,identity,real,generated" + (",group" if groups else "")
    rows = [header + (",clip,audio" if audio_seconds else "")]
    for index, identity in enumerate(identities):
        split = ("test", "val")[index % 2]
        for photo in range(photos_per_identity):
            real, generated = f"real/{identity}_{photo}.png", f"generated/{identity}_{photo}.png"
            write_png(folder / real, 10 * index + photo)
            write_png(folder / generated, 200 - 10 * index - photo + generated_shift)
            row = f"{split},{identity},{real},{generated}" + (f",{'a' if index % 2 else 'b'}" if groups else "")
            if audio_seconds:
                audio = f"audio/{split}/{identity}/clip_{photo}.{audio_format}"
                write_tone(folder / audio, audio_seconds, 200 + 40 * index + photo)
                row += f",{split}/{identity}/clip_{photo},{audio}"
            rows.append(row)
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder


def write_tone(path: Path, seconds: float, hertz: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    time_s = np.arange(round(seconds * 16000)) / 16000
    soundfile.write(str(path), (0.2 * np.sin(2 * np.pi * hertz * time_s)).astype(np.float32), 16000)


def write_png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PilImage.new("RGB", (8, 8), (shade % 256, (255 - shade) % 256, (shade * 7) % 256)).save(path)


class ServerProcess:
    """`python -m survey_app serve` on loopback, its processes in a group of their own; `port` stays the same across
    restarts."""

    def __init__(self, data_dir: Path, database_url: str, workers: int, threads: int, log_path: Path) -> None:
        self._data_dir, self._database_url = data_dir, database_url
        self._workers, self._threads = workers, threads
        self._log_path = log_path
        self._process: subprocess.Popen | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        """Starts the server and returns once it listens (it prints its URL after binding the socket)."""
        command = [sys.executable, "-m", "survey_app", "--data-dir", str(self._data_dir)]
        command += ["--database-url", self._database_url, "serve", "--port", str(self.port)]
        command += ["--workers", str(self._workers), "--threads", str(self._threads)]
        with open(self._log_path, "a") as log:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
            )
        self.port = _port_from_banner(self._process, timeout_s)

    def kill(self) -> None:
        """SIGKILL to every process of the server: no clean-up at all, as in a crash."""
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process.stdout.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server's running processes (Linux /proc)."""
        return cpu_seconds(self._in_group)

    def connections_per_process(self) -> Counter[int]:
        """Established TCP connections on the server's port, by the server process that holds them (Linux /proc)."""
        established = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == self.port and fields[3] == TCP_ESTABLISHED:
                    established.add(f"socket:[{fields[9]}]")
        counts: Counter[int] = Counter()
        for process in running_processes():
            if not self._in_group(process):
                continue
            try:
                links = [os.readlink(fd) for fd in Path(f"/proc/{process.pid}/fd").iterdir()]
            except OSError:  # the process ended meanwhile
                continue
            counts[process.pid] = len(established.intersection(links))
        return counts

    def _in_group(self, process: ProcessStat) -> bool:
        return process.group == self._process.pid  # the server runs in a process group of its own

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=60)
            self._process.stdout.close()


@dataclass(frozen=True)
class ProcessStat:
    """The facts of /proc/PID/stat that the load tools use."""

    pid: int
    command: str
    group: int
    cpu_ticks: int  # user + system


def running_processes() -> Iterator[ProcessStat]:
    """Every running process of this machine (Linux /proc)."""
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat_path.read_text().rsplit(")", 1)
        except OSError:  # the process ended meanwhile
            continue
        fields = rest.split()
        command = head.split("(", 1)[1]
        yield ProcessStat(int(stat_path.parent.name), command, int(fields[2]), int(fields[11]) + int(fields[12]))


def cpu_seconds(include: Callable[[ProcessStat], bool]) -> float:
    """User + system CPU time so far of the running processes that `include` selects (Linux /proc)."""
    ticks = sum(process.cpu_ticks for process in running_processes() if include(process))
    return ticks / os.sysconf("SC_CLK_TCK")


def _port_from_banner(process: subprocess.Popen, timeout_s: float) -> int:
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    try:
        banner = process.stdout.readline()
    finally:
        timer.cancel()
    match = re.search(r"serving on http://[^:]+:(\d+)/", banner)
    if match is None:
        raise RuntimeError(f"the server did not start (exit status {process.poll()}); see its log")
    return int(match.group(1))


@dataclass(frozen=True)
class AnswerAudit:
    """Acknowledged answers (one per trial and question) against the rows in the database."""

    acknowledged: int
    stored: int
    lost: int  # acknowledged but missing, or stored with another value
    doubled: int  # extra rows for a trial and question
    unacknowledged: int  # stored but never acknowledged to any rater


def acknowledged_answers(runs: Sequence[RaterRun]) -> list[AcknowledgedAnswer]:
    """Every rater's acknowledged answers so far (safe to call while the raters are still running)."""
    return [answer for run in runs for answer in list(run.acknowledged)]


def audit_answers(db: Session, study_slug: str, answers: Iterable[AcknowledgedAnswer]) -> AnswerAudit:
    """Compares acknowledged answers with every answer stored in the study."""
    acknowledged = {
        (answer.trial_id, question): value for answer in answers for question, value in answer.answers.items()
    }
    rows = db.execute(
        select(Answer.trial_id, Answer.question, Answer.value)
        .join(Rater, Rater.id == Answer.rater_id)
        .join(Study, Study.id == Rater.study_id)
        .where(Study.slug == study_slug)
    ).all()
    stored = {(trial_id, question.value): value for trial_id, question, value in rows}
    copies = Counter((trial_id, question.value) for trial_id, question, _ in rows)
    return AnswerAudit(
        acknowledged=len(acknowledged),
        stored=len(rows),
        lost=sum(stored.get(key) != value for key, value in acknowledged.items()),
        doubled=sum(count - 1 for count in copies.values()),
        unacknowledged=len(stored.keys() - acknowledged.keys()),
    )


PLAYS_URL = re.compile(r'data-plays-url="([^"]+)"')
Decide = Callable[[str, str, str], str]  # (trial id, question, page html) -> the value to answer


def rate_kind_study(
    base_url: str, slug: str, deadline: float, decide: Decide, play: bool = True, rt_ms: str = "1500"
) -> RaterRun:
    """One simulated rater of an audio-era study (audio check, matching, hype, pairwise) from consent to its end,
    through real HTTP: on an audio trial it fetches the clip, reports `play`, waits the clip's length (read from the
    WAV, as a browser's player would play it) and reports `ended` before answering (`play=False`: answers at once,
    which the server must refuse). Stops at the completion page or the early-end page; `run.completed` tells which.
    """
    run = RaterRun()
    session = HttpSession(base_url, deadline, run)
    try:
        csrf = _consent(session, slug, run)
        while True:
            page, _ = session.request("GET", f"/r/{run.token}/trial")
            if _expect(page, (200, 302), "trial page").status == 302:
                location = urlsplit(page.headers["Location"]).path
                if not TASK_INSTRUCTIONS.search(location):
                    run.completed = location.endswith("/done")
                    return run
                _expect(session.request("GET", location)[0], (200,), "task instructions")
                page, _ = session.request("GET", f"/r/{run.token}/trial?intro=done")
            action = TRIAL_ACTION.search(page.text).group(1)
            trial_id = action.split("/trials/")[1].split("/")[0]
            question = QUESTION.search(page.text).group(1)
            plays = PLAYS_URL.search(page.text)
            if plays and play:
                _play_to_end(session, plays.group(1), csrf)
            form = {"csrf_token": csrf, "rt_ms": rt_ms, "next": "1", question: decide(trial_id, question, page.text)}
            posted, latency = session.request("POST", action, form)
            if posted.status == 409 and not play:
                raise ClipRefused(trial_id)
            stored = json.loads(_expect(posted, (200,), "answer").text)["answers"]
            run.acknowledged.append(AcknowledgedAnswer(trial_id, stored, latency))
    finally:
        session.close()


class ClipRefused(RuntimeError):
    """The server refused an answer given before the clip had played to the end."""


def _play_to_end(session: HttpSession, plays_url: str, csrf: str) -> None:
    audio, _ = session.request("GET", plays_url.replace("/plays", "/audio"))
    duration_s = soundfile.info(io.BytesIO(audio.body)).duration
    _expect(session.request("POST", plays_url, {"csrf_token": csrf, "event": "play"})[0], (200,), "play")
    time.sleep(duration_s)
    _expect(session.request("POST", plays_url, {"csrf_token": csrf, "event": "ended"})[0], (200,), "ended")
