"""The rendered report in real headless Chromium (Debian's chromium + chromium-driver) at desktop and phone size:
every image and speech clip loaded, no console message, the sections in order. Screenshots of the top, a gallery row
and the study section go to tmp_path, and to $REPORTS_SCREENSHOT_DIR when it is set."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reports.render import render

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

IMAGES_STATE = "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);"
AUDIO_STATE = ("return Array.from(document.querySelectorAll('audio')).map(a => [a.readyState, a.duration, "
               "a.error ? a.error.code : null]);")
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _shoot(browser, element, path: Path) -> None:
    """Scroll ``element`` (or the top, None) into view and save a screenshot (also to $REPORTS_SCREENSHOT_DIR)."""
    browser.execute_script("arguments[0] ? arguments[0].scrollIntoView() : window.scrollTo(0, 0);", element)
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 0
    if os.environ.get("REPORTS_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["REPORTS_SCREENSHOT_DIR"]) / path.name)


@pytest.mark.parametrize("size", SIZES)
def test_report_opens_in_chromium_with_every_image_sound_and_table(study_run, browser, tmp_path, size):
    """At desktop and phone width: every image and every speech clip loads, nothing is logged to the console, the
    page does not scroll sideways, the verdict comes first and the gallery and study sections are there."""
    html = render(study_run)
    browser.set_window_size(*SIZES[size])
    browser.get(html.as_uri())
    browser.execute_script("document.querySelectorAll('audio').forEach(a => a.load());")
    WebDriverWait(browser, 30).until(lambda d: all(s[0] >= 1 or s[2] for s in d.execute_script(AUDIO_STATE)))
    images = browser.execute_script(IMAGES_STATE)
    assert len(images) >= 8 and all(complete and width > 0 for complete, width, _ in images), images
    sounds = browser.execute_script(AUDIO_STATE)
    assert len(sounds) >= 4 and all(state >= 1 and error is None and length > 0.2 for state, length, error in sounds)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert headings[:2] == ["Verdict", "Results"] and "Paired gallery with speech" in headings
    assert any(h.startswith("Human study") for h in headings)
    titles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".table .title")]
    assert titles[:4] == [
        "Verdict: the model against the best trivial generator, figure by figure (same clips, paired)",
        "Verdict: the model against what a voice alone predicts, a ridge map from voice embeddings to face "
        "descriptors (same clips, paired)",
        "Headline results (95 % intervals)", "The seed's published figures beside ours"]
    title = browser.find_elements(By.CSS_SELECTOR, ".table .title")[0]
    assert title.rect["x"] >= 0 and title.rect["x"] + title.rect["width"] <= SIZES[size][0]  # caption not clipped
    _shoot(browser, None, tmp_path / f"{size}_top.png")
    _shoot(browser, browser.find_element(By.CSS_SELECTOR, ".gallery-row"), tmp_path / f"{size}_gallery_row.png")
    _shoot(browser, browser.find_element(By.ID, "human-study"), tmp_path / f"{size}_study.png")
