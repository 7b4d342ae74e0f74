"""The rendered report in real headless Chromium (Debian's chromium + chromium-driver): every image loaded, the
tables are there. A full-page screenshot goes to tmp_path, and to $REPORTS_SCREENSHOT_DIR when it is set."""

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

IMAGES_STATE = "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);"


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_report_opens_in_chromium_with_every_image_and_table(run_copy, browser, tmp_path):
    html = render(run_copy)
    browser.get(html.as_uri())
    images = browser.execute_script(IMAGES_STATE)
    assert len(images) >= 8
    assert all(complete and width > 0 for complete, width, _ in images), images
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "table caption")]
    assert captions[:5] == ["Verdict: the model against the per-identity mean face (same clips, paired)",
                            "Verdict: the model against what a voice alone predicts, a ridge map from voice "
                            "embeddings to face descriptors (same clips, paired)",
                            "Headline results (95 % intervals)", "The seed's published figures beside ours",
                            "Evaluated data"]
    assert "Reference generators beside the evaluated one, scored by the same metrics on the same clips" in captions
    headline = browser.find_elements(By.CSS_SELECTOR, "table")[2]
    assert [r.find_element(By.TAG_NAME, "th").text for r in headline.find_elements(By.CSS_SELECTOR, "tbody tr")] == \
        ["Real data", "Seen speech", "Unseen speech", "Unseen identities"]
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(height + 100, 16000))
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0
    if os.environ.get("REPORTS_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["REPORTS_SCREENSHOT_DIR"]) / "report.png")
