"""End to end in real headless Chromium (Debian's chromium + chromium-driver) against a threaded server on loopback.

Screenshots go to tmp_path, and also to $SURVEY_APP_SCREENSHOT_DIR when it is set, for a human to look at.
"""

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from survey_app.models import Answer, Rater
from survey_app.rater_sessions import QUESTIONS_BY_KIND

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE_WINDOW = (412, 915)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),  # the database layer is tested elsewhere
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium from PyPI")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def server_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def browser(tmp_path: Path):
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    width, height = PHONE_WINDOW
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}}
    )
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _screenshot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("SURVEY_APP_SCREENSHOT_DIR"):
        target = Path(os.environ["SURVEY_APP_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def _keys_for_trial(driver, page_number: int) -> list[str]:
    form = driver.find_element(By.ID, "trial-form")
    kind = re.search(r"trial-(\w+)", form.get_attribute("class")).group(1)
    if kind == "lineup":
        return ["1"]
    quality = str(1 + page_number % 5)
    attention = re.search(r"please select (\d)", form.text)
    if attention:
        return [attention.group(1)]
    recognition = {"control_same": "y", "control_different": "n"}.get(kind, "s")
    return [quality, recognition]


def _all_saved(driver) -> bool:
    fieldsets = driver.find_elements(By.CSS_SELECTOR, "fieldset[data-question]")
    return all("saved" in fieldset.get_attribute("class") for fieldset in fieldsets)


def test_a_rater_completes_the_study_in_chromium_with_the_keyboard(
    server_url, browser, study, db, tmp_path: Path
) -> None:
    wait = WebDriverWait(browser, 20)
    browser.get(f"{server_url}/s/{study}?PROLIFIC_PID=e2e-rater&STUDY_ID=s1&SESSION_ID=x1")
    _screenshot(browser, tmp_path, "01-consent")
    browser.find_element(By.ID, "consent").click()
    browser.find_element(By.ID, "start").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "begin"))
    assert "/r/" in browser.find_element(By.ID, "resume-url").text
    _screenshot(browser, tmp_path, "02-instructions")
    browser.find_element(By.ID, "begin").click()
    for page_number in range(50):
        wait.until(lambda driver: "/done" in driver.current_url or driver.find_elements(By.ID, "trial-form"))
        if "/done" in browser.current_url:
            break
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        images = browser.find_elements(By.CSS_SELECTOR, "figure img, .option img")
        assert images and all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
        for key in _keys_for_trial(browser, page_number):
            browser.find_element(By.TAG_NAME, "body").send_keys(key)
        wait.until(_all_saved)
        if page_number in (0, 6):
            _screenshot(browser, tmp_path, f"03-trial-{page_number}")
        form = browser.find_element(By.ID, "trial-form")
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        wait.until(lambda driver, old_form=form: not _is_attached(old_form))
    code = browser.find_element(By.ID, "completion-code").text
    _screenshot(browser, tmp_path, "04-done")
    rater = db.scalar(select(Rater))
    answers = db.scalars(select(Answer)).all()
    assert rater.completed_at is not None and rater.platform_pid == "e2e-rater"
    assert rater.viewport == "{}x{}".format(*PHONE_WINDOW)
    assert len(answers) == sum(len(QUESTIONS_BY_KIND[trial.item.kind]) for trial in rater.trials)
    assert all(answer.client_rt_ms is not None for answer in answers)
    assert re.fullmatch(r"[0-9A-F]{10}", code)
    assert browser.find_element(By.ID, "return").get_attribute("href").endswith(f"cc={code}")


def _is_attached(element) -> bool:
    try:
        element.is_enabled()
        return True
    except Exception:  # noqa: BLE001 - selenium raises StaleElementReferenceException once the page has changed
        return False
