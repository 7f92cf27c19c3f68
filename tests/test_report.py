"""The Snakemake report of the default run, opened in real headless Chromium.

Each stage's section must be listed, each of its figures must open and load as an image, and the
screenshots must not be blank. Chromium and its driver come from Debian (installed here when
missing and this test runs as root); screenshots are kept in $NEURODAG_REPORT_SCREENSHOTS if set.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import snakemake

#: Report sections (categories) the default run must show, with a figure per listed dataset.
EXPECTED_SECTIONS = {
    "homogenize": ["connectome", "worms"],
    "connectome": ["worms"],
    "bicluster": ["allen"],
    "mds": ["allen"],
    "geometry": ["allen"],
    "latents": ["allen"],
}


def ensure_chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
        check=True,
        env=env,
        capture_output=True,
    )
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver = ensure_chromium()
    options = Options()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1600,1100")
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


def not_blank(png: Path) -> bool:
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    return float(pixels.std()) > 0.02


def click_text(chrome, text: str):
    chrome.find_element("xpath", f"//*[normalize-space(text())='{text}']").click()
    time.sleep(0.3)


def loaded_png(chrome, timeout: float = 10.0):
    """The figure the report shows in its main panel, once the browser has decoded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for img in chrome.find_elements("tag name", "img"):
            src = img.get_attribute("src") or ""
            width = chrome.execute_script("return arguments[0].naturalWidth", img)
            if src.startswith("data:image/png") and width > 100:
                return img
        time.sleep(0.2)
    return None


@pytest.mark.slow
def test_report_renders_every_stage(default_run, browser, tmp_path):
    report = default_run / "results" / "report.html"
    result = snakemake("--report", str(report), cwd=default_run)
    assert result.returncode == 0, result.stderr[-3000:]
    shots = Path(os.environ.get("NEURODAG_REPORT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    browser.get(report.as_uri())
    time.sleep(1)
    assert browser.title == "Snakemake Report"
    home = shots / "report-home.png"
    browser.save_screenshot(str(home))
    assert not_blank(home)
    for section, datasets in EXPECTED_SECTIONS.items():
        browser.get(report.as_uri())
        time.sleep(0.5)
        click_text(browser, "Results")
        click_text(browser, section)
        for dataset in datasets:
            # the result tables' rows (the landing page's validation table names datasets too)
            row_path = f"//tr[td[normalize-space(text())='{dataset}']][.//a[@iconname='eye']]"
            rows = browser.find_elements("xpath", row_path)
            if not rows:  # a section with several datasets lists them first (subcategories)
                browser.get(report.as_uri())
                time.sleep(0.5)
                click_text(browser, "Results")
                click_text(browser, section)
                click_text(browser, dataset)
                rows = browser.find_elements("xpath", row_path)
            assert rows, f"report section {section} lists no figure for dataset {dataset}"
            for index in range(len(rows)):
                row = browser.find_elements("xpath", row_path)[index]
                row.find_element("css selector", "a[iconname='eye']").click()
                image = loaded_png(browser)
                assert image is not None, f"{section}/{dataset} figure {index} did not load"
                shot = shots / f"report-{section}-{dataset}-{index}.png"
                browser.save_screenshot(str(shot))
                assert not_blank(shot)
                assert np.isfinite(image.size["width"]) and image.size["width"] > 100


@pytest.mark.slow
def test_report_has_the_validation_table(default_run, browser):
    report = default_run / "results" / "report.html"
    if not report.exists():
        assert snakemake("--report", str(report), cwd=default_run).returncode == 0
    browser.get(report.as_uri())
    time.sleep(0.5)
    click_text(browser, "Results")
    click_text(browser, "validation")
    assert browser.find_elements(
        "xpath", "//tr[td[normalize-space(text())='ground-truth recovery']]"
    )


@pytest.mark.slow
def test_report_opens_on_what_ran_and_the_validation_table(default_run, browser):
    report = default_run / "results" / "report.html"
    if not report.exists():
        assert snakemake("--report", str(report), cwd=default_run).returncode == 0
    browser.get(report.as_uri())
    time.sleep(1)
    text = browser.find_element("tag name", "body").text
    assert "What ran in this neurodag run" in text
    for stage in EXPECTED_SECTIONS:
        assert f"{stage} on" in text, stage
    # the stages' headline figures, and a link to each headline figure
    assert "neuron_ari 1" in text and "nmi 0.9" in text
    assert browser.find_elements("xpath", "//a[contains(text(), 'allen.coclustering.png')]")
    assert browser.find_elements("xpath", "//a[contains(text(), 'validation.html')]")
