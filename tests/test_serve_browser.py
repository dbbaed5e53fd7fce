"""avs serve in a real browser: the server started as a user starts it (`avs serve` on a free loopback port, the
SIMULATED demo), headless Chromium driven by selenium: type a query and see results, open a topic and see its
relevance marks and infAP, compare two runs, export a run and validate it.

Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`; `.ci/run` installs them).
Without them the test is skipped, except under CI, where it fails. With AVS_SCREENSHOTS=DIR it also saves a
screenshot of each page there: `AVS_SCREENSHOTS=docs/serve python -m pytest tests/test_serve_browser.py` makes the
ones in docs/serve.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avs.demo.builtin import ensure
from avs.engine.searcher import Searcher
from avs.formats.runs import read_run, validate
from avs.formats.topics import read_topics

from conftest import two_demo_runs

CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
if not (Path(CHROMIUM).exists() and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium and chromium-driver for the browser tests (.ci/run)")
    pytest.skip("no chromium / chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = Path(os.environ["AVS_SCREENSHOTS"]) if os.environ.get("AVS_SCREENSHOTS") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    (laff, other), run = two_demo_runs(tmp)  # builds the demo first, in this test session's demo folder
    port = free_port()
    cmd = [sys.executable, "-m", "avs", "serve", "--port", str(port), "--runs", str(laff), "--runs", str(other)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()  # the server says where it listens once it does
        assert f"http://127.0.0.1:{port}/" in line, line + proc.stdout.read() if proc.poll() is not None else line
        yield f"http://127.0.0.1:{port}/", tmp, run
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('profile')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait(driver, condition, seconds: float = 60):
    return WebDriverWait(driver, seconds).until(lambda d: condition(d))


def screenshot(driver, name: str) -> None:
    if SHOTS is not None:
        driver.execute_script("window.scrollTo(0, 0)")
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_search_page(server, browser):
    url, _, _ = server
    browser.get(url)
    wait(browser, lambda d: "SIMULATED" in d.find_element(By.ID, "info").text or d.find_element(By.ID, "info").text)
    assert browser.find_element(By.ID, "simulated").is_displayed()
    box = browser.find_element(By.ID, "q")
    box.send_keys("a person paddling kayak in the water\n")
    cards = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results .shot"))
    status = browser.find_element(By.ID, "search-status").text
    assert len(cards) == 50 and "1000 shots" in status and " ms" in status
    expected = Searcher(ensure().model, ensure().index).query("a person paddling kayak in the water", 60).shots
    assert [c.get_attribute("data-shot") for c in cards] == expected[:50]
    browser.find_elements(By.CSS_SELECTOR, "#search-pager button")[1].click()
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#search-results .shot").get_attribute("data-shot") == expected[50],
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#search-pager button")) == 20  # 1000 shots, 50 a page
    browser.find_elements(By.CSS_SELECTOR, "#search-pager button")[0].click()
    screenshot(browser, "search")
    box.clear()
    box.send_keys(" \n")
    wait(browser, lambda d: "empty query" in d.find_element(By.ID, "search-status").text)


def test_topic_page(server, browser):
    url, tmp, _ = server
    browser.get(url + "#topics")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#topic-results .shot")) == 50)
    Select(browser.find_element(By.ID, "topic-select")).select_by_value("642")
    wait(browser, lambda d: "paddling" in d.find_element(By.ID, "topic-select").text and
         d.find_elements(By.CSS_SELECTOR, "#topic-measures td[data-measure=infAP]") and
         d.find_element(By.ID, "topic-status").text.startswith("1000 shots"))  # fmt: skip
    labels = ["action", "location", "object", "person"]
    wait(browser, lambda d: [s.text for s in d.find_elements(By.CSS_SELECTOR, "#topic-labels span")] == labels)
    from avs.eval.infap import evaluate_runs

    infap = evaluate_runs([tmp / "laff.xml"], ensure().qrels)["laff"].per_topic.loc["1642", "infAP"]
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#topic-measures td[data-measure=infAP]").text == f"{infap:.4f}",
    )
    relevant = browser.find_elements(By.CSS_SELECTOR, "#topic-results .shot.relevant")
    assert relevant and browser.find_elements(By.CSS_SELECTOR, "#topic-results .shot.relevant .mark")[0].text == "✓"
    screenshot(browser, "topic")


def test_compare_page(server, browser):
    url, _, _ = server
    browser.get(url + "#compare")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#run-b option")) == 2)
    Select(browser.find_element(By.ID, "run-b")).select_by_value("other")
    Select(browser.find_element(By.ID, "compare-topic")).select_by_value("642")
    browser.find_element(By.ID, "compare-go").click()
    wait(browser, lambda d: "900 shots in both runs" in d.find_element(By.ID, "compare-status").text)
    rows = browser.find_elements(By.CSS_SELECTOR, "#compare-summary tr")
    assert [r.text.split()[0] for r in rows[1:]] == ["laff", "other"]
    plot = wait(browser, lambda d: d.find_element(By.ID, "compare-plot"))
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", plot))
    screenshot(browser, "compare")


def test_export_page_downloads_a_valid_run(server, browser):
    url, tmp, run = server
    browser.get(url + "#export")
    link = wait(browser, lambda d: d.find_element(By.ID, "export-link"))
    assert "/api/export?format=xml" in link.get_attribute("href")
    screenshot(browser, "export")
    link.click()
    path = browser.downloads / "sim_laff_tv20.xml"
    deadline = time.time() + 60
    while not path.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert path.exists(), list(browser.downloads.iterdir())
    assert not validate(path, topics=read_topics("tv20"))
    exported = read_run(path)
    assert {n: [i.shot for i in t.items] for n, t in exported.topics.items()} == {
        n: [i.shot for i in t.items] for n, t in run.topics.items()
    }
