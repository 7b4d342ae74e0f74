import re

import pytest
from werkzeug.security import generate_password_hash

from survey_app.models import Admin
from survey_app.stats import votes_for_half_width

from .support import csrf_from

PASSWORD = "correct horse battery"
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # cheap for tests only


@pytest.fixture
def admin_client(app, db):
    db.add(Admin(username="boss", password_hash=PASSWORD_HASH))
    db.commit()
    client = app.test_client()
    csrf = csrf_from(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"csrf_token": csrf, "username": "boss", "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_wrong_password_is_refused(app, db) -> None:
    db.add(Admin(username="boss", password_hash=PASSWORD_HASH))
    db.commit()
    client = app.test_client()
    csrf = csrf_from(client.get("/admin/login").text)
    for username, password in (("boss", "wrong"), ("nobody", PASSWORD)):
        response = client.post("/admin/login", data={"csrf_token": csrf, "username": username, "password": password})
        assert response.status_code == 401
    assert client.get("/admin/").status_code == 302


def test_dashboard_shows_progress_results_and_planner(admin_client, study, start_rater, complete_session) -> None:
    client, token, csrf = start_rater(study)
    complete_session(client, token, csrf)
    index = admin_client.get("/admin/")
    assert index.status_code == 200 and f"/s/{study}" in index.text
    page = admin_client.get(f"/admin/studies/{study}?half_width=0.3&sd=1&icc=0&votes_per_rater=4")
    text = re.sub(r"\s+", " ", page.text)
    assert page.status_code == 200
    assert "1 started, 1 completed, 1 included" in text
    assert re.search(r"min 0, median \d, max 1", text)
    assert f"{votes_for_half_width(1.0, 0.3)} independent votes" in text and "<strong>" in text
    assert admin_client.get(f"/admin/studies/{study}?half_width=abc").status_code == 400
    assert admin_client.get(f"/admin/studies/{study}?icc=2").status_code == 400


def test_exports_download_and_unknown_names_404(admin_client, study) -> None:
    csv_response = admin_client.get(f"/admin/studies/{study}/export/answers.csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    assert csv_response.text.startswith("rater_id,trial_id")
    assert admin_client.get(f"/admin/studies/{study}/export/results_summary.md").status_code == 200
    assert admin_client.get(f"/admin/studies/{study}/export/passwd").status_code == 404
    assert admin_client.get("/admin/studies/nope").status_code == 404


def test_logout_ends_the_admin_session(admin_client) -> None:
    csrf = csrf_from(admin_client.get("/admin/").text)
    assert admin_client.post("/admin/logout", data={"csrf_token": csrf}).status_code == 302
    assert admin_client.get("/admin/").status_code == 302


def test_logging_in_replaces_the_csrf_secret(app, db) -> None:
    """A secret planted in the browser before the login (and its token) is worthless after it."""
    db.add(Admin(username="boss", password_hash=PASSWORD_HASH))
    db.commit()
    client = app.test_client()
    planted = csrf_from(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"csrf_token": planted, "username": "boss", "password": PASSWORD})
    assert response.status_code == 302 and "survey_csrf=" in response.headers["Set-Cookie"]
    assert client.post("/admin/logout", data={"csrf_token": planted}).status_code == 400
    fresh = csrf_from(client.get("/admin/").text)
    assert fresh != planted and client.post("/admin/logout", data={"csrf_token": fresh}).status_code == 302
