"""Admin sessions end on logout and password change (every earlier cookie of that admin), and expire; logins are
throttled per account and per address, with the counts shared by every process of the server."""

from __future__ import annotations

import http.client
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from survey_app import views_admin
from survey_app.app import create_app
from survey_app.cli import main
from survey_app.models import Admin
from tests.survey_app.robot import ServerProcess

from .conftest import csrf_from
from .test_admin import PASSWORD, PASSWORD_HASH


@pytest.fixture
def boss(db) -> None:
    db.add(Admin(username="boss", password_hash=PASSWORD_HASH))
    db.commit()


def login(app, username: str = "boss", password: str = PASSWORD, client=None, **kwargs):
    client = client or app.test_client()
    csrf = csrf_from(client.get("/admin/login").text)
    form = {"csrf_token": csrf, "username": username, "password": password}
    return client, client.post("/admin/login", data=form, **kwargs)


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def with_cookie(app, cookie: str):
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def test_a_cookie_copied_before_logout_downloads_nothing_after_it(app, boss, study) -> None:
    client, response = login(app)
    assert response.status_code == 302
    copied = session_cookie(client)
    export = f"/admin/studies/{study}/export/raters.csv"
    assert with_cookie(app, copied).get(export).status_code == 200
    csrf = csrf_from(client.get("/admin/").text)
    assert client.post("/admin/logout", data={"csrf_token": csrf}).status_code == 302
    refused = with_cookie(app, copied).get(export)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/admin/login")


def test_logout_ends_the_admins_sessions_in_other_browsers_too(app, boss) -> None:
    laptop, _ = login(app)
    phone, _ = login(app)
    csrf = csrf_from(laptop.get("/admin/").text)
    laptop.post("/admin/logout", data={"csrf_token": csrf})
    assert phone.get("/admin/").status_code == 302


def test_a_password_change_ends_every_other_session_and_keeps_this_one(app, boss) -> None:
    laptop, _ = login(app)
    phone, _ = login(app)
    copied = session_cookie(phone)
    csrf = csrf_from(laptop.get("/admin/password").text)
    new = "a brand new passphrase"
    form = {"csrf_token": csrf, "current_password": PASSWORD, "new_password": new, "confirm_password": new}
    wrong = laptop.post("/admin/password", data=form | {"current_password": "nope"})
    assert wrong.status_code == 400 and "current password is wrong" in wrong.text
    short = laptop.post("/admin/password", data=form | {"new_password": "short", "confirm_password": "short"})
    assert short.status_code == 400 and "at least 12" in short.text
    assert laptop.post("/admin/password", data=form).status_code == 302
    assert laptop.get("/admin/").status_code == 200
    assert phone.get("/admin/").status_code == 302
    assert with_cookie(app, copied).get("/admin/").status_code == 302
    assert login(app, password=PASSWORD)[1].status_code == 401
    assert login(app, password=new)[1].status_code == 302


def test_a_new_password_set_from_the_command_line_ends_every_session(app, boss, tmp_path: Path) -> None:
    client, _ = login(app)
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "--database-url", app.config["SURVEY_DATABASE_URL"], "create-admin"]
        + ["--username", "boss"],
        env={"SURVEY_APP_ADMIN_PASSWORD": "reset from the shell"},
    )
    assert result.exit_code == 0, result.output
    assert client.get("/admin/").status_code == 302


def test_sessions_expire_when_idle_and_after_the_maximum_age(app, boss, monkeypatch) -> None:
    client, _ = login(app)
    assert client.get("/admin/").status_code == 200
    later = time.time() + app.config["SURVEY_ADMIN_MAX_HOURS"] * 3600 + 60
    monkeypatch.setattr(views_admin.time, "time", lambda: later)
    assert client.get("/admin/").status_code == 302  # too long since login, however active
    monkeypatch.undo()
    client, _ = login(app)
    set_cookie = client.get("/admin/").headers["Set-Cookie"]
    assert "Expires=" in set_cookie and "HttpOnly" in set_cookie  # a permanent session, renewed on each request
    app.permanent_session_lifetime = timedelta(seconds=1)
    time.sleep(2.1)
    assert client.get("/admin/").status_code == 302  # idle longer than the lifetime


def test_wrong_passwords_are_throttled_per_account_even_with_the_right_one_after(app, boss) -> None:
    client = app.test_client()
    for _ in range(5):
        assert login(app, password="guess", client=client)[1].status_code == 401
    _, refused = login(app, client=client)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 60
    assert "Too many login attempts" in refused.text and "Traceback" not in refused.text
    other_address = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
    assert login(app, **other_address)[1].status_code == 429  # the account's limit holds from any address


def test_logins_are_throttled_per_address_across_accounts(app, boss) -> None:
    client = app.test_client()
    for attempt in range(10):
        assert login(app, username=f"user{attempt}", client=client)[1].status_code == 401
    assert login(app, client=client)[1].status_code == 429
    spoofed = {"headers": {"X-Forwarded-For": "203.0.113.9"}}  # no proxy configured: the header is not trusted
    assert login(app, client=client, **spoofed)[1].status_code == 429
    assert login(app, environ_base={"REMOTE_ADDR": "10.0.0.3"})[1].status_code == 302


def test_two_app_processes_share_the_counts(app_config: dict, boss) -> None:
    """Each server worker builds its own app: the counts live in the database, so they add up across workers."""
    first, second = create_app(app_config), create_app(app_config)
    try:
        for worker in (first, second, first, second, first):
            assert login(worker, password="guess")[1].status_code == 401
        assert login(second)[1].status_code == 429
        assert login(first)[1].status_code == 429
    finally:
        for worker in (first, second):
            worker.extensions["survey_engine"].dispose()


@pytest.mark.slow
def test_parallel_guesses_against_a_multi_process_server_get_five_tries(tmp_path: Path, app_config: dict, boss):
    """8 clients guess at once against `survey-app serve` with 2 worker processes: 5 guesses are checked in the
    minute, every other one is refused before its password is looked at."""
    server = ServerProcess(tmp_path, app_config["SURVEY_DATABASE_URL"], 2, 4, tmp_path / "server.log")
    server.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: _guess_over_http(server.port, 4), range(8)))
    finally:
        server.stop()
    flat = [status for client in statuses for status in client]
    assert sorted(set(flat)) == [401, 429] and flat.count(401) == 5, flat


def _guess_over_http(port: int, guesses: int) -> list[int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/admin/login")
        page = connection.getresponse()
        html = page.read().decode()
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        statuses = []
        for guess in range(guesses):
            body = urlencode({"csrf_token": token, "username": "boss", "password": f"guess {os.getpid()} {guess}"})
            headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
            connection.request("POST", "/admin/login", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        return statuses
    finally:
        connection.close()


def test_exports_are_never_cached(app, boss, study) -> None:
    client, _ = login(app)
    for name in ("raters.csv", "answers.csv", "export.json", "codebook.json", "results_summary.md"):
        response = client.get(f"/admin/studies/{study}/export/{name}")
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store", name


def test_admin_data_in_the_database_is_found_by_the_loader_only_with_its_generation(app, boss, db) -> None:
    client, _ = login(app)
    admin = db.scalar(select(Admin))
    admin.session_generation += 1
    db.commit()
    assert client.get("/admin/").status_code == 302
