"""End to end in real headless Chromium (Debian's chromium + chromium-driver) against a threaded server on loopback,
at phone size (390x844, touch) and desktop size (1280x900, keyboard).

Every page type is checked for horizontal scrolling and screenshotted: to tmp_path, and also to
$SURVEY_APP_SCREENSHOT_DIR when it is set, for a human to look at.
"""

import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from survey_app.audio_check import TONE_CLIP_S
from survey_app.models import (
    Admin,
    Answer,
    Image,
    ItemKind,
    PlayEvent,
    Rater,
    StudyKind,
    Trial,
)
from survey_app.rater_sessions import QUESTIONS_BY_KIND
from survey_app.study_kinds import KindOptions

from .conftest import build_kind_study, open_trial, write_run_dir
from .test_admin import PASSWORD, PASSWORD_HASH

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)
DESKTOP = (1280, 900)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),  # the database layer is tested elsewhere
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium from PyPI")
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
def server_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def _browser(tmp_path: Path, phone: bool):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--autoplay-policy=no-user-gesture-required",  # audio trials: play() from the test's click, headless
        f"--user-data-dir={tmp_path / ('phone' if phone else 'desktop')}",
    ):
        options.add_argument(flag)
    if phone:
        width, height = PHONE
        metrics = {"width": width, "height": height, "pixelRatio": 2, "touch": True, "mobile": True}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    else:
        options.add_argument("--window-size={},{}".format(*DESKTOP))
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    if not phone:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": DESKTOP[0], "height": DESKTOP[1], "deviceScaleFactor": 1, "mobile": False},
        )
    return driver


@pytest.fixture
def phone(tmp_path: Path):
    driver = _browser(tmp_path, phone=True)
    yield driver
    driver.quit()


@pytest.fixture
def desktop(tmp_path: Path):
    driver = _browser(tmp_path, phone=False)
    yield driver
    driver.quit()


def _screenshot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("SURVEY_APP_SCREENSHOT_DIR"):
        target = Path(os.environ["SURVEY_APP_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def _fits_the_width(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def _in_view(driver, element) -> bool:
    """The whole element lies inside the window without scrolling."""
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth;",
        element,
    )


def _visible_keyboard_hints(driver) -> int:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('kbd')).filter(k => k.offsetParent !== null).length"
    )


def _kind_answers(db, driver, page_number: int) -> dict[str, str]:
    """A careful rater's answers for the trial on screen (the kind looked up on the server, never on the page)."""
    action = driver.find_element(By.ID, "trial-form").get_attribute("action")
    trial_id = re.search(r"/trials/([0-9a-f]{32})/", action).group(1)
    kind = db.get(Trial, trial_id).item.kind.value
    db.commit()  # SQLite: end the test's transaction before the app writes
    text = driver.find_element(By.ID, "trial-form").text
    answers = {"lineup": "1", "quality": str(1 + page_number % 5)}
    attention = re.search(r"please select (\d)", text)
    if attention:
        answers["quality"] = attention.group(1)
    answers["recognition"] = {"control_same": "yes", "control_different": "no"}.get(kind, "not_sure")
    return answers


def _walk(driver, db, study: str, server_url: str, tmp_path: Path, prefix: str, keyboard: bool) -> str:
    """Consent to completion code; returns the code. Screenshots each page type once."""
    wait = WebDriverWait(driver, 20)
    shots = set()

    def shot(name: str) -> None:
        if name not in shots:
            shots.add(name)
            _screenshot(driver, tmp_path, f"{prefix}-{len(shots):02d}-{name}")

    driver.get(f"{server_url}/s/{study}?PROLIFIC_PID=e2e-{prefix}&STUDY_ID=s1&SESSION_ID=x1")
    assert _fits_the_width(driver)
    shot("consent")
    driver.find_element(By.ID, "consent").click()
    driver.find_element(By.ID, "start").click()
    wait.until(lambda d: d.find_elements(By.ID, "begin"))
    resume = driver.find_element(By.ID, "resume-url")
    assert "/r/" in resume.text and _fits_the_width(driver)
    assert driver.execute_script("return arguments[0].getBoundingClientRect().right <= window.innerWidth", resume)
    shot("instructions")
    driver.find_element(By.ID, "begin").click()
    for page_number in range(60):
        if not _to_next_trial(driver, wait, shot):
            break
        images = driver.find_elements(By.CSS_SELECTOR, "figure img, .option img")
        assert images and all(driver.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
        answers = _kind_answers(db, driver, page_number)
        lineup = bool(driver.find_elements(By.CSS_SELECTOR, "fieldset[data-question=lineup]"))
        is_attention = "Attention check" in driver.find_element(By.ID, "trial-form").text
        if not keyboard:
            assert _visible_keyboard_hints(driver) == 0
            for element in driver.find_elements(By.CSS_SELECTOR, ".option, .choices label") + [
                driver.find_element(By.ID, "next")
            ]:
                assert _in_view(driver, element), (driver.current_url, element.text)
        first_question = "lineup" if lineup else "quality"
        wrong_first = {"lineup": "2", "quality": "1" if answers["quality"] != "1" else "2"}[first_question]
        _answer(driver, first_question, wrong_first, keyboard)  # a first answer, then changed: the last one counts
        first = driver.find_element(By.CSS_SELECTOR, f"fieldset[data-question={first_question}]")
        wait.until(lambda _, fieldset=first: "Saved" in fieldset.text)
        for question in ("lineup",) if lineup else ("quality", "recognition"):
            if driver.find_elements(By.CSS_SELECTOR, f"fieldset[data-question={question}]"):
                _answer(driver, question, answers[question], keyboard)
        fieldsets = driver.find_elements(By.CSS_SELECTOR, "fieldset[data-question]")
        wait.until(lambda _, fieldsets=fieldsets: all("saved" in f.get_attribute("class") for f in fieldsets))
        chosen = driver.find_element(By.CSS_SELECTOR, f"input[name={first_question}]:checked")
        assert chosen.get_attribute("value") == answers[first_question]
        highlighted = driver.execute_script(
            "return getComputedStyle(arguments[0].closest('label')).backgroundColor", chosen
        )
        assert highlighted not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")
        shot("lineup" if lineup else ("attention" if is_attention else "pair"))
        form = driver.find_element(By.ID, "trial-form")
        if keyboard:
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        else:
            driver.find_element(By.ID, "next").click()
        wait.until(lambda d, old=form: not _is_attached(old))
    code = driver.find_element(By.ID, "completion-code").text
    shot("done")
    return code


def _to_next_trial(driver, wait, shot) -> bool:
    """Waits for the next page and clicks through a task's instructions (screenshotting them); False at the
    completion page. Every page must fit the width."""
    while True:
        wait.until(
            lambda d: (
                "/done" in d.current_url or d.find_elements(By.ID, "trial-form") or d.find_elements(By.ID, "start-task")
            )
        )
        assert _fits_the_width(driver), driver.current_url
        if "/done" in driver.current_url:
            return False
        if not driver.find_elements(By.ID, "start-task"):
            return True
        shot("task-" + driver.current_url.rsplit("/", 1)[1])
        driver.find_element(By.ID, "start-task").click()


def _answer(driver, question: str, value: str, keyboard: bool) -> None:
    keys = {"yes": "y", "no": "n", "not_sure": "s"}
    if keyboard:
        driver.find_element(By.TAG_NAME, "body").send_keys(keys.get(value, value))
    else:
        radio = driver.find_element(By.CSS_SELECTOR, f'input[name={question}][value="{value}"]')
        radio.find_element(By.XPATH, "..").click()


def _is_attached(element) -> bool:
    try:
        element.is_enabled()
        return True
    except Exception:  # noqa: BLE001 - selenium raises StaleElementReferenceException once the page has changed
        return False


def _check_session(db, code: str, pid: str, viewport: tuple[int, int] | None) -> None:
    rater = db.scalar(select(Rater).where(Rater.platform_pid == pid))
    answers = db.scalars(select(Answer).where(Answer.rater_id == rater.id)).all()
    assert rater.completed_at is not None
    if viewport:
        assert rater.viewport == "{}x{}".format(*viewport)
    assert len(answers) == sum(len(QUESTIONS_BY_KIND[trial.item.kind]) for trial in rater.trials)
    assert all(answer.client_rt_ms is not None for answer in answers)
    assert sum(answer.changes for answer in answers) == rater.trials_total  # the first question of each page
    assert re.fullmatch(r"[0-9A-F]{10}", code)
    db.commit()


@pytest.fixture
def four_face_study(make_study) -> str:
    return make_study("four-faces", lineup_size=4)


def _more_raters(db, study: str, start_rater, complete_session) -> str:
    """Three careful raters (direct link) through the test client, so that the results page has numbers to show;
    the last one's token."""
    for _ in range(3):
        client, token, csrf = start_rater(study)
        complete_session(client, token, csrf)
    db.commit()
    return token


def test_a_rater_completes_the_study_on_a_phone(
    server_url, phone, four_face_study, db, tmp_path: Path, start_rater, complete_session
) -> None:
    code = _walk(phone, db, four_face_study, server_url, tmp_path, "phone", keyboard=False)
    assert phone.find_element(By.ID, "return").get_attribute("href").endswith(f"cc={code}")
    _check_session(db, code, "e2e-phone", PHONE)
    token = _more_raters(db, four_face_study, start_rater, complete_session)
    _direct_done_page(phone, server_url, token, tmp_path, "phone")
    _walk_error_and_admin_pages(phone, db, four_face_study, server_url, tmp_path, "phone")


def test_a_rater_completes_the_study_on_a_desktop_with_the_keyboard(
    server_url, desktop, four_face_study, db, tmp_path: Path, start_rater, complete_session
) -> None:
    code = _walk(desktop, db, four_face_study, server_url, tmp_path, "desktop", keyboard=True)
    _check_session(db, code, "e2e-desktop", DESKTOP)
    token = _more_raters(db, four_face_study, start_rater, complete_session)
    _direct_done_page(desktop, server_url, token, tmp_path, "desktop")
    _walk_error_and_admin_pages(desktop, db, four_face_study, server_url, tmp_path, "desktop")


def _log_in_as_admin(driver, db, server_url: str, on_login_page) -> None:
    """Logs in as the admin "boss" (created when missing); `on_login_page()` runs on the login form."""
    if not db.scalar(select(Admin)):
        db.add(Admin(username="boss", password_hash=PASSWORD_HASH))
    db.commit()
    driver.get(f"{server_url}/admin/login")
    on_login_page()
    driver.find_element(By.NAME, "username").send_keys("boss")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD + Keys.ENTER)
    WebDriverWait(driver, 20).until(lambda d: d.current_url.endswith("/admin/"))


def _direct_done_page(driver, server_url: str, token: str, tmp_path: Path, prefix: str) -> None:
    driver.get(f"{server_url}/r/{token}/done")
    assert "send it to the person who invited you" in driver.find_element(By.ID, "code-help").text
    assert _fits_the_width(driver)
    _screenshot(driver, tmp_path, f"{prefix}-19-done-direct")


def _walk_error_and_admin_pages(driver, db, study: str, server_url: str, tmp_path: Path, prefix: str) -> None:
    driver.get(f"{server_url}/r/{'A' * 43}/trial")
    assert "Page not found" in driver.page_source and _fits_the_width(driver)
    _screenshot(driver, tmp_path, f"{prefix}-20-error")
    _log_in_as_admin(driver, db, server_url, lambda: _screenshot(driver, tmp_path, f"{prefix}-21-admin-login"))
    assert _fits_the_width(driver)
    _screenshot(driver, tmp_path, f"{prefix}-22-admin-index")
    driver.get(f"{server_url}/admin/studies/{study}")
    assert "Krippendorff" in driver.page_source and _fits_the_width(driver)
    _screenshot(driver, tmp_path, f"{prefix}-23-admin-study")
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight / 2)")
    _screenshot(driver, tmp_path, f"{prefix}-24-admin-study-results")
    driver.get(f"{server_url}/admin/password")
    assert _fits_the_width(driver)
    _screenshot(driver, tmp_path, f"{prefix}-25-admin-password")


@pytest.fixture
def matching_study(app, tmp_path: Path) -> str:
    """A voice -> face matching study with 3 faces per trial over a synthetic run with 0.5 s voices."""
    run = write_run_dir(tmp_path / "audio-run", groups=True, photos_per_identity=4, audio_seconds=0.5)
    return build_kind_study(
        app, [run], "voices", KindOptions(StudyKind.MATCHING, faces=3), seed=5, test_pairs=8, test_trials_per_session=4
    )


def _walk_audio(driver, db, study: str, server_url: str, tmp_path: Path, prefix: str) -> None:
    """Consent to completion code of an audio study: each audio page is played in the browser (its play and ended
    events go to the server), then answered by a click; an answer tried before the play is refused."""
    wait = WebDriverWait(driver, 30)
    shots: set[str] = set()

    def shot(name: str) -> None:
        if name not in shots:
            shots.add(name)
            _screenshot(driver, tmp_path, f"{prefix}-audio-{len(shots):02d}-{name}")

    driver.get(f"{server_url}/s/{study}?PROLIFIC_PID=audio-{prefix}&STUDY_ID=s1&SESSION_ID=x1")
    driver.find_element(By.ID, "consent").click()
    driver.find_element(By.ID, "start").click()
    wait.until(lambda d: d.find_elements(By.ID, "begin"))
    shot("instructions")
    driver.find_element(By.ID, "begin").click()
    for _ in range(30):
        if not _to_next_trial(driver, wait, shot):
            break
        action = driver.find_element(By.ID, "trial-form").get_attribute("action")
        trial = db.get(Trial, re.search(r"/trials/([0-9a-f]{32})/", action).group(1))
        item, display = trial.item, list(trial.display_image_ids)
        question = "audio_check" if item.kind == ItemKind.AUDIO_CHECK else "matching"
        value = item.expected_answer or str(
            1 + [db.get(Image, image_id).identity for image_id in display].index(item.identity)
        )
        db.commit()
        assert "awaiting-play" in driver.find_element(By.ID, "trial-form").get_attribute("class")
        shot(f"{question}-before-play")
        _answer(driver, question, value, keyboard=False)  # before the clip has played: the server refuses it
        wait.until(lambda d: "play the voice to the end" in d.find_element(By.ID, "save-status").text.lower())
        driver.find_element(By.ID, "play").click()
        wait.until(lambda d: "answer now" in d.find_element(By.ID, "play-note").text)
        _answer(driver, question, value, keyboard=False)
        wait.until(
            lambda d: "saved" in d.find_element(By.CSS_SELECTOR, "fieldset[data-question]").get_attribute("class")
        )
        shot(f"{question}-answered")
        form = driver.find_element(By.ID, "trial-form")
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d, old=form: not _is_attached(old))
    assert driver.find_element(By.ID, "completion-code").text
    shot("done")
    db.expire_all()  # the trials read while walking are stale now
    rater = db.scalar(select(Rater).where(Rater.platform_pid == f"audio-{prefix}"))
    events = db.scalars(select(PlayEvent).join(Trial).where(Trial.rater_id == rater.id)).all()
    assert rater.completed_at is not None and rater.viewport
    assert all(trial.played_at is not None and trial.plays >= 1 for trial in rater.trials)
    assert {event.event for event in events} == {"play", "ended"}
    assert sum(bool(event.complete) for event in events) == rater.trials_total
    assert all(event.client_duration_ms for event in events)  # the page reported the audio's duration
    db.commit()


def test_a_rater_completes_an_audio_study_on_a_phone(
    server_url, phone, matching_study, db, tmp_path: Path, start_rater
) -> None:
    _walk_audio(phone, db, matching_study, server_url, tmp_path, "phone")
    _ended_and_admin_pages(phone, db, matching_study, server_url, tmp_path, "phone", start_rater)


def test_a_rater_completes_an_audio_study_on_a_desktop(
    server_url, desktop, matching_study, db, tmp_path: Path, start_rater
) -> None:
    _walk_audio(desktop, db, matching_study, server_url, tmp_path, "desktop")
    _ended_and_admin_pages(desktop, db, matching_study, server_url, tmp_path, "desktop", start_rater)


def _ended_and_admin_pages(driver, db, study: str, server_url: str, tmp_path: Path, prefix: str, start_rater) -> None:
    """The page of a rater who failed the audio check, and the admin's results page of the audio study."""
    client, token, csrf = start_rater(study)
    page = open_trial(client, token)
    action = re.search(r'action="(/r/[^"]+/answers)"', page.text).group(1)
    trial = db.get(Trial, action.split("/trials/")[1].split("/")[0])
    wrong = str(7 - int(trial.item.expected_answer))
    db.commit()
    plays = action.replace("/answers", "/plays")
    client.post(plays, data={"csrf_token": csrf, "event": "play"})
    time.sleep(TONE_CLIP_S)
    client.post(plays, data={"csrf_token": csrf, "event": "ended"})
    assert client.post(action, data={"csrf_token": csrf, "audio_check": wrong, "next": "1"}).status_code == 302
    driver.get(f"{server_url}/r/{token}/trial")
    assert "/ended" in driver.current_url and "sound check did not work out" in driver.page_source
    assert _fits_the_width(driver)
    _screenshot(driver, tmp_path, f"{prefix}-audio-09-ended")
    _log_in_as_admin(driver, db, server_url, lambda: None)
    driver.get(f"{server_url}/admin/studies/{study}")
    text = driver.find_element(By.ID, "headline").text
    assert "Voice -> face matching accuracy, real faces" in text and _fits_the_width(driver)
    assert "ended by the audio check" in driver.find_element(By.ID, "progress").text
    _screenshot(driver, tmp_path, f"{prefix}-audio-10-admin-study")


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_timed_hype_trial_shows_the_face_for_its_exposure_then_a_mask(
    request, server_url, app, db, tmp_path: Path, size: str
) -> None:
    run = write_run_dir(tmp_path / "hype-run", photos_per_identity=4)
    build_kind_study(
        app, [run], "real-or-not", KindOptions(StudyKind.HYPE, exposures_ms=(300,)), seed=2, test_pairs=6,
        test_trials_per_session=6,
    )
    driver = request.getfixturevalue(size)
    wait = WebDriverWait(driver, 20)
    driver.get(f"{server_url}/s/real-or-not")
    driver.find_element(By.ID, "consent").click()
    driver.find_element(By.ID, "start").click()
    wait.until(lambda d: d.find_elements(By.ID, "begin"))
    driver.find_element(By.ID, "begin").click()
    wait.until(lambda d: d.find_elements(By.ID, "start-task"))
    _screenshot(driver, tmp_path, f"{size}-hype-01-task")
    driver.find_element(By.ID, "start-task").click()
    for page_number in range(6):
        wait.until(lambda d: d.find_elements(By.ID, "trial-form"))
        assert _fits_the_width(driver)
        timed = driver.find_elements(By.ID, "timed")
        if timed:
            _screenshot(driver, tmp_path, f"{size}-hype-02-timed-before")
            driver.find_element(By.ID, "show-face").click()
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#timed figure").is_displayed())
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#timed .mask").is_displayed())
            _screenshot(driver, tmp_path, f"{size}-hype-03-timed-masked")
        else:
            _screenshot(driver, tmp_path, f"{size}-hype-04-untimed")
        _answer(driver, "hype", "real" if page_number % 2 else "generated", keyboard=False)
        wait.until(
            lambda d: "saved" in d.find_element(By.CSS_SELECTOR, "fieldset[data-question]").get_attribute("class")
        )
        form = driver.find_element(By.ID, "trial-form")
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d, old=form: not _is_attached(old))
    wait.until(lambda d: "/done" in d.current_url)
    db.expire_all()
    exposures = db.scalars(select(Trial.exposure_ms)).all()
    assert len(exposures) == 6 and set(exposures) == {None, 300}  # per arm (3 trials each) 2 + 1 or 1 + 2
