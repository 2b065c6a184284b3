"""A real browser for the report and the served page: Debian's headless Chromium driven by selenium.

`.ci/run` installs it (`apt-get install -y chromium chromium-driver`) and runs the tests with
`CI=true`. In CI (env `CI` set to true, 1 or yes, as CI services and `.ci/run` set it) a browser
test that cannot get a working Chromium **fails**, so a CI run cannot be green with the pages
untested; elsewhere it skips and says why. Chromium runs with flags that keep it off the network
(which is closed here: without them it waits on background connections) and a fresh profile.

Screenshots go to each test's tmp dir and, with env LSLLM_SCREENSHOTS=DIR, are copied there.
"""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.report.conftest import report_seq_run, report_token_run  # noqa: F401  (the tiny runs, trained once)

CHROMIUM = Path(os.environ.get("LSLLM_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("LSLLM_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900"]
LAPTOP = (1280, 900)
PHONE = (390, 844)


def in_ci() -> bool:
    """Whether this is a CI run (env CI=true, as GitHub, GitLab and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def no_browser(reason: str):
    """No working browser: a failure in CI (the pages would go untested), a skip with its reason elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI)", pytrace=False)
    pytest.skip(reason)


def require_selenium() -> None:
    """At the top of a browser test module: selenium must import (it is in the `test` extra)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = "selenium is not installed: pip install -e '.[test]'"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: the browser tests must run in CI)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


def start_chromium(profile: Path, extra_flags: list[str] = ()):
    """A headless Chromium driven by selenium, or `no_browser` with the reason it cannot start."""
    require_selenium()
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        no_browser(f"no Chromium at {CHROMIUM} / {CHROMEDRIVER}: apt-get install -y chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, *extra_flags, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except Exception as err:  # a Chromium that cannot start here (e.g. missing libraries): said plainly, a failure in CI
        no_browser(f"Chromium did not start: {type(err).__name__}: {str(err).splitlines()[0]}")
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser):
    """The browser at laptop size with its console log emptied; console errors fail the test."""
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.set_window_size(*LAPTOP)
    browser.get_log("browser")
    yield browser
    # A 401 is what the served page gets before its API key is typed: the browser logs it, the page handles it.
    severe = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "the server responded with a status of 401" not in entry["message"]]
    assert not severe, f"console errors: {severe}"


@pytest.fixture
def screenshot(browser, tmp_path, request):
    """screenshot(name, phone=False): the whole page as a PNG, at laptop or phone width."""
    target = os.environ.get("LSLLM_SCREENSHOTS")

    def take(name: str, phone: bool = False) -> Path:
        width, height = PHONE if phone else LAPTOP
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone})
        try:
            shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        path = tmp_path / f"{request.node.name}-{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / f"{name}.png")
        return path

    return take


class LiveServer:
    """uvicorn serving an app on a loopback port from a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
