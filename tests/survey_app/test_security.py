import io
import re
import socket
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from survey_app import csrf as csrf_cookie
from survey_app import migrate
from survey_app.cli import main
from survey_app.db import create_database_engine
from survey_app.models import Answer, Image, Rater
from tests.survey_app.robot import START_NONCE, ServerProcess

from .conftest import QUESTION, TRIAL_ACTION, csrf_from, open_trial


def test_every_post_requires_a_valid_csrf_token(app, study, start_rater) -> None:
    client, token, _ = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    question = QUESTION.findall(page.text)[0]
    assert client.post(action, data={question: "1"}).status_code == 400
    assert client.post(action, data={"csrf_token": "forged", question: "1"}).status_code == 400
    stranger = app.test_client()
    assert stranger.post(f"/s/{study}/start", data={"consent": "agree", "consent_version": "1"}).status_code == 400
    assert stranger.post("/admin/login", data={"username": "a", "password": "b"}).status_code == 400
    assert stranger.post("/admin/logout").status_code == 400


def test_a_token_from_another_session_does_not_validate_csrf(app, study, start_rater) -> None:
    client, token, _ = start_rater(study)
    _, _, other_csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    assert client.post(action, data={"csrf_token": other_csrf, "quality": "1"}).status_code == 400


def test_the_csrf_cookie_is_http_only_and_same_site_and_needed_with_its_token(app, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = app.test_client().get(f"/s/{study}")
    set_cookie = page.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{csrf_cookie.COOKIE_NAME}=")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    page = open_trial(client, token).text
    action = TRIAL_ACTION.search(page).group(1)
    forms = {"csrf_token": csrf, QUESTION.findall(page)[0]: "99"}  # refused for its value, once past the CSRF check
    refused = client.post(action, data=forms)
    assert refused.status_code == 400 and b"CSRF" not in refused.data
    client.set_cookie(csrf_cookie.COOKIE_NAME, "x" * 43)  # a well-formed secret the token was not made from
    assert b"CSRF token is invalid" in client.post(action, data=forms).data
    client.set_cookie(csrf_cookie.COOKIE_NAME, "../" * 20)
    assert b"CSRF cookie is missing" in client.post(action, data=forms).data
    client.delete_cookie(csrf_cookie.COOKIE_NAME)
    assert b"CSRF cookie is missing" in client.post(action, data=forms).data


def test_requests_the_browser_marks_cross_site_are_refused(study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = open_trial(client, token, headers={"Sec-Fetch-Site": "cross-site"})  # a link from Prolific
    assert page.status_code == 200
    action = TRIAL_ACTION.search(page.text).group(1)
    question = QUESTION.findall(page.text)[0]
    for other_site in ("cross-site", "same-site"):  # same-site: a sibling subdomain, which could plant a cookie
        posted = client.post(action, data={"csrf_token": csrf, question: "1"}, headers={"Sec-Fetch-Site": other_site})
        assert posted.status_code == 400 and b"Request from another site refused" in posted.data
    same_origin = {"Sec-Fetch-Site": "same-origin"}
    assert client.post(action, data={"csrf_token": csrf, question: "1"}, headers=same_origin).status_code == 302


def test_behind_https_the_csrf_cookie_is_a_host_only_secure_cookie(app, study) -> None:
    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    page = client.get(f"/s/{study}", base_url="https://survey.example")
    set_cookie = page.headers["Set-Cookie"]
    assert set_cookie.startswith("__Host-survey_csrf=") and "Secure" in set_cookie and "Path=/" in set_cookie
    consent = {
        "csrf_token": csrf_from(page.text),
        "consent": "agree",
        "consent_version": "1",
        "start_nonce": START_NONCE.search(page.text).group(1),
    }
    assert client.post(f"/s/{study}/start", data=consent, base_url="https://survey.example").status_code == 302


def test_other_raters_trials_and_images_answer_404(study, start_rater) -> None:
    alice, alice_token, alice_csrf = start_rater(study)
    bob, bob_token, _ = start_rater(study)
    alice_page = open_trial(alice, alice_token).text
    alice_action = TRIAL_ACTION.search(alice_page).group(1)
    alice_trial = alice_action.split("/trials/")[1].split("/")[0]
    alice_image = re.search(r'src="(/r/[^"]+/images/0)"', alice_page).group(1)
    assert alice.get(alice_image).status_code == 200
    assert bob.get(alice_image.replace(alice_token, bob_token)).status_code == 404
    posted = bob.post(f"/r/{bob_token}/trials/{alice_trial}/answers", data={"csrf_token": alice_csrf, "quality": "1"})
    assert posted.status_code in (400, 404)  # bob's session has no valid CSRF for alice's token; never 200
    bob_csrf = re.search(r'csrf-token" content="([^"]+)"', open_trial(bob, bob_token).text).group(1)
    assert (
        bob.post(
            f"/r/{bob_token}/trials/{alice_trial}/answers", data={"csrf_token": bob_csrf, "quality": "1"}
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    "path",
    [
        "/r/not-a-token/trial",
        "/r/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/trial",
        "/r/{token}/trials/..%2F..%2Fetc%2Fpasswd/images/0",
        "/r/{token}/trials/{trial}/images/99",
        "/r/{token}/trials/{trial}/images/..%2F..%2Fsurvey.sqlite3",
        "/r/{token}/examples/5",
        "/r/{token}/examples/..%2F..%2Fsurvey.sqlite3",
        "/r/{token}/tasks/..%2Fsecret_key",
        "/r/{token}/../../survey.sqlite3",
        "/s/..%2F..%2Fetc",
        "/static/..%2F..%2Fsurvey.sqlite3",
        "/admin/studies/study-one/export/..%2Fsecret_key",
    ],
)
def test_hostile_ids_and_paths_answer_404(study, start_rater, path: str) -> None:
    client, token, _ = start_rater(study)
    trial = TRIAL_ACTION.search(open_trial(client, token).text).group(1).split("/trials/")[1].split("/")[0]
    response = client.get(path.format(token=token, trial=trial))
    assert response.status_code in (302, 404)
    assert b"CREATE TABLE" not in response.data and b"root:" not in response.data


@pytest.mark.parametrize("trial_id", ["..%2F..%2Fsurvey.sqlite3", "..", "x" * 200])
def test_hostile_trial_ids_in_answer_posts_answer_404(study, start_rater, trial_id: str) -> None:
    client, token, csrf = start_rater(study)
    response = client.post(f"/r/{token}/trials/{trial_id}/answers", data={"csrf_token": csrf, "quality": "1"})
    assert response.status_code == 404


def test_nul_bytes_in_ids_and_fields_are_refused(app, study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    for path in ("/s/%00", f"/s/{study}?PROLIFIC_PID=%00", f"/r/{token}/trials/%00/images/0", "/admin/studies/%00"):
        assert client.get(path).status_code == 400, path
    assert client.post(f"/r/{token}/trials/%00/answers", data={"csrf_token": csrf, "quality": "1"}).status_code == 400
    login = {"csrf_token": csrf, "username": "boss\x00", "password": "b"}
    assert client.post("/admin/login", data=login).status_code == 400


def test_malformed_and_oversized_payloads_are_refused(study, start_rater) -> None:
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    question = QUESTION.findall(page.text)[0]
    for bad in (
        {question: "7"},
        {question: "<script>"},
        {"unknown": "1"},
        {question: "1", "rt_ms": "-5"},
        {question: "1", "rt_ms": "soon"},
        {},
    ):
        assert client.post(action, data={"csrf_token": csrf} | bad).status_code == 400, bad
    for body in (
        f"csrf_token={csrf}&{question}=1&{question}=2",  # repeated field
        f"csrf_token={csrf}&{question}=%FF%FE",  # not UTF-8
        f"csrf_token={csrf}&{question}=1&rt_ms={'9' * 5000}",  # an integer too long to parse
    ):
        assert client.post(action, data=body, content_type="application/x-www-form-urlencoded").status_code == 400
    as_json = client.post(action, json={question: "1"}, headers={"X-CSRFToken": csrf})
    assert as_json.status_code == 400
    upload = {"csrf_token": csrf, question: "1", "extra": (io.BytesIO(b"#!/bin/sh"), "x.sh")}
    assert client.post(action, data=upload, content_type="multipart/form-data").status_code == 400
    huge = client.post(action, data={"csrf_token": csrf, question: "1", "pad": "x" * 20_000})
    assert huge.status_code == 413
    nonce = START_NONCE.search(client.get(f"/s/{study}").text).group(1)
    consent = {"csrf_token": csrf, "consent": "agree", "consent_version": "1", "start_nonce": nonce}
    assert client.post(f"/s/{study}/start", data=consent | {"viewport": "1" * 20_000}).status_code == 413
    assert client.post(f"/s/{study}/start", data=consent | {"viewport": "../../x"}).status_code == 400
    login = {"csrf_token": csrf, "username": "a" * 20_000, "password": "b"}
    assert client.post("/admin/login", data=login).status_code == 413
    assert (
        client.post(
            f"/s/{study}/start",
            data=consent | {"PROLIFIC_PID": "a b/../c"},
        ).status_code
        == 400
    )
    assert client.get(f"/s/{study}?PROLIFIC_PID=" + "x" * 65).status_code == 400


def test_tokens_are_stored_hashed_and_urls_reveal_no_stimulus_facts(db, study, start_rater) -> None:
    client, token, _ = start_rater(study)
    page = open_trial(client, token).text
    rater = db.scalar(select(Rater))
    assert token not in (rater.token_hash, rater.public_id) and len(rater.token_hash) == 64
    urls = " ".join(re.findall(r'(?:src|action|href)="([^"]+)"', page))
    image_ids = set(db.scalars(select(Image.id)))
    for leak in ("real", "generated", "fake", "id0", "control", "attention", "test", "png", *image_ids):
        assert leak not in urls


def test_security_headers_and_a_csp_without_third_party_origins(app, study) -> None:
    response = app.test_client().get(f"/s/{study}")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert not re.search(r"https?:|\*|'unsafe-inline'|'unsafe-eval'", csp)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in response.text and " style=" not in response.text


def test_admin_pages_require_login(app, study) -> None:
    client = app.test_client()
    for path in ("/admin/", f"/admin/studies/{study}", f"/admin/studies/{study}/export/answers.csv"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/login")


def _chunked(body: bytes, size: int = 4096) -> bytes:
    chunks = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def test_a_chunked_body_over_the_limit_is_refused_like_a_sized_one(app, db, study, start_rater) -> None:
    """The answer fields first, then 5 MB: refused with 413 (not cut at the limit and stored); a small chunked body
    is read whole and works."""
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    form = f"csrf_token={csrf}&lineup=1&next=1".encode()
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/x-www-form-urlencoded"}
    huge = client.post(action, input_stream=io.BytesIO(form + b"&pad=" + b"x" * 5_000_000), headers=headers)
    assert huge.status_code == 413 and "Too much data" in huge.text
    db.commit()
    assert db.scalars(select(Answer)).all() == []
    db.commit()
    small = client.post(action, input_stream=io.BytesIO(form), headers=headers)
    assert small.status_code == 302
    assert [answer.value for answer in db.scalars(select(Answer))] == ["1"]


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_refused_by_the_real_server(
    tmp_path, app_config, study, start_rater, monkeypatch
):
    """Through gunicorn, as an attacker sends it: Transfer-Encoding: chunked, no Content-Length."""
    monkeypatch.setenv("SURVEY_APP_SECRET_KEY", app_config["SECRET_KEY"])  # the server takes the test app's CSRF
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    cookie = f"{csrf_cookie.COOKIE_NAME}={client.get_cookie(csrf_cookie.COOKIE_NAME).value}"
    server = ServerProcess(tmp_path, app_config["SURVEY_DATABASE_URL"], 2, 2, tmp_path / "server.log")
    server.start()
    try:
        form = f"csrf_token={csrf}&lineup=1&next=1".encode()
        statuses = []
        for body in (form + b"&pad=" + b"x" * 5_000_000, form):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
                head = (
                    f"POST {action} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                try:
                    connection.sendall(head.encode() + _chunked(body))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered and closed before reading it all
                statuses.append(int(connection.makefile("rb").readline().split()[1]))
    finally:
        server.stop()
    assert statuses == [413, 302]


def test_the_sqlite_database_and_its_wal_are_private(tmp_path) -> None:
    """Password hashes and platform ids: the database, its -wal and -shm files are 0600, and a database made
    before this rule is narrowed when the app opens it."""
    engine = create_database_engine(f"sqlite:///{tmp_path / 'private.sqlite3'}")
    migrate.upgrade(engine)
    with engine.begin() as connection:  # keeps the WAL and shared-memory files open
        connection.exec_driver_sql("CREATE TABLE t (x)")
        for name in ("private.sqlite3", "private.sqlite3-wal", "private.sqlite3-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    engine.dispose()
    (tmp_path / "private.sqlite3").chmod(0o644)
    create_database_engine(f"sqlite:///{tmp_path / 'private.sqlite3'}").dispose()
    assert stat.S_IMODE((tmp_path / "private.sqlite3").stat().st_mode) == 0o600


def test_the_data_folder_and_exports_with_platform_ids_are_private(tmp_path, run_dir) -> None:
    runner = CliRunner()
    data_dir = tmp_path / "data"
    created = runner.invoke(
        main, ["--data-dir", str(data_dir), "create-study", "--run", str(run_dir), "--slug", "private"]
    )
    assert created.exit_code == 0, created.output
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    out = tmp_path / "out"
    exported = runner.invoke(main, ["--data-dir", str(data_dir), "export", "--study", "private", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    for name in ("raters.csv", "export.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("path", ["/r/{token}/trials/abc/answers", "/s/{study}/start"])
def test_error_pages_show_no_python_internals(app, study, start_rater, path: str) -> None:
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = TRIAL_ACTION.search(page.text).group(1)
    for form in ({"lineup": "abc"}, {"lineup": "1", "rt_ms": "9" * 5000}, {"lineup": "1", "rt_ms": "abc"}):
        response = client.post(action, data={"csrf_token": csrf} | form)
        assert response.status_code == 400
        for internal in ("invalid literal", "int()", "4300", "Traceback", "ValueError", "digits"):
            assert internal not in response.text, (form, internal)
    response = client.post(path.format(token=token, study=study), data={"csrf_token": csrf})
    assert response.status_code in (400, 404) and "Traceback" not in response.text
    assert "<h1>" in response.text and "personal link" in response.text
