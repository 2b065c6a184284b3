"""`GET /docs` of `lsllm serve` in a Chromium cut off from everything but this machine.

FastAPI's own docs pages load Swagger UI from a CDN and are blank offline; ours load the files
the fastapi-offline package ships, from the server itself (lsllm/serve/docs.py). The browser here
gets no network beyond loopback (every other host is unresolvable and every proxied request
refused), so a page that still needed a CDN would stay blank and fail.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from .conftest import LiveServer, require_selenium, start_chromium

require_selenium()
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from lsllm.serve.app import ServeSettings, app_from_run  # noqa: E402

KEY = "d0cs-key"
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name outside resolves
           "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]  # and no request leaves but to loopback
# Every Content-Security-Policy violation, recorded from the page's first script on.
RECORD_VIOLATIONS = """window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });"""


@pytest.fixture(scope="module")
def offline_browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-offline"), OFFLINE)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    yield driver
    driver.quit()


@pytest.fixture
def browser_offline(offline_browser):
    """The offline browser with its console emptied; console errors and CSP violations fail the test."""
    offline_browser.get_log("browser")
    yield offline_browser
    severe = [e["message"] for e in offline_browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors: {severe}"


@pytest.fixture(scope="module")
def open_server(report_seq_run):
    with LiveServer(app_from_run(report_seq_run, dtype="float32", device="cpu")) as server:
        yield server


@pytest.fixture(scope="module")
def key_server(report_seq_run):
    with LiveServer(app_from_run(report_seq_run, ServeSettings(api_key=KEY), dtype="float32", device="cpu")) as server:
        yield server


class _Resources(HTMLParser):
    """Every URL a page loads by itself: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in {"script": ("src",), "link": ("href",), "img": ("src",)}.get(tag, ()):
            if attrs.get(name):
                self.urls.append(attrs[name])


def _loads_only_its_own_server(server: LiveServer, path: str) -> httpx.Response:
    """The page's HTML names no other origin, and every file it names is served without a key."""
    page = httpx.get(server.url + path.lstrip("/"), timeout=30)
    assert page.status_code == 200
    parser = _Resources()
    parser.feed(page.text)
    assert parser.urls, "the page loads its UI from files"
    origin = urlsplit(server.url)[:2]
    for url in parser.urls:
        absolute = urljoin(str(page.url), url)
        assert urlsplit(absolute)[:2] == origin, f"{path} loads {url} from another origin"
        asset = httpx.get(absolute, timeout=30)
        assert asset.status_code == 200 and asset.content, absolute
    assert not re.search(r"(?:https?:)?//(?!127\.0\.0\.1)[\w.-]+\.\w+/", page.text), "no outside URL anywhere in the page"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "unsafe-eval" not in policy
    assert "unsafe-inline" not in re.search(r"script-src [^;]*", policy).group(0)
    return page


def _wait(driver, condition, timeout=30):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def _swagger_rendered(driver) -> None:
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#operations-default-predict_predict_post"))
    block = driver.find_element(By.CSS_SELECTOR, "#operations-default-predict_predict_post")
    assert "/predict" in block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").text
    assert driver.execute_script("return typeof ui === 'object' && typeof SwaggerUIBundle === 'function'")
    assert driver.execute_script("return window.__violations") == []

def _try_it_out(driver, operation: str) -> str:
    """Open an operation, press "Try it out" and "Execute": the status code Swagger UI shows."""
    block = f"#operations-default-{operation}"
    driver.find_element(By.CSS_SELECTOR, f"{block} .opblock-summary").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"{block} .try-out__btn"))[0].click()
    driver.find_element(By.CSS_SELECTOR, f"{block} .execute").click()
    cells = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"{block} .live-responses-table tr.response .response-col_status"))
    return cells[0].text.split()[0]


def test_docs_render_offline_and_try_it_out_reaches_the_server(browser_offline, open_server):
    _loads_only_its_own_server(open_server, "/docs")
    driver = browser_offline
    driver.get(open_server.url + "docs")
    _swagger_rendered(driver)
    paths = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert {"/predict", "/info", "/health"} <= set(paths)
    assert not driver.find_elements(By.CSS_SELECTOR, ".btn.authorize")  # no key on this server: nothing to authorize
    # "Try it out" on /health: Swagger UI's request goes to this server and its answer is shown.
    assert _try_it_out(driver, "health_health_get") == "200"
    assert driver.execute_script("return window.__violations") == []


def test_docs_behind_an_api_key_still_render_and_authorize_sends_the_key(browser_offline, key_server):
    assert httpx.get(key_server.url + "info", timeout=30).status_code == 401
    _loads_only_its_own_server(key_server, "/docs")
    driver = browser_offline
    driver.get(key_server.url + "docs")
    _swagger_rendered(driver)
    driver.find_element(By.CSS_SELECTOR, ".btn.authorize").click()
    field = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".modal-ux input"))[0]
    field.send_keys(KEY)
    driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .authorize").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".modal-ux .btn-done"))[0].click()
    # /info, behind the key, answers 200 from "Try it out" now.
    assert _try_it_out(driver, "model_info_info_get") == "200"
    assert driver.execute_script("return window.__violations") == []

