"""`GET /` of `lsllm serve` in headless Chromium: type a sentence, press the button, read the answer."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import require_selenium

require_selenium()
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from lsllm.serve.app import ServeSettings, app_from_run  # noqa: E402

from .conftest import LiveServer  # noqa: E402

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def seq_server(report_seq_run):
    """The sequence run behind an API key: the page must ask for it."""
    with LiveServer(app_from_run(report_seq_run, ServeSettings(api_key=KEY), dtype="float32", device="cpu")) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(report_token_run):
    with LiveServer(app_from_run(report_token_run, dtype="float32", device="cpu")) as server:
        yield server


def _wait(driver, condition, timeout=20):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def _shown(driver, element_id: str):
    element = driver.find_element(By.ID, element_id)
    return element if element.is_displayed() else None


def _predict(server: LiveServer, text: str, key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(server.url + "predict", json={"texts": [text]}, headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()["predictions"][0]


def test_the_page_asks_for_the_key_and_shows_the_label_predict_gives(page, seq_server, screenshot):
    page.get(seq_server.url)
    key_box = _wait(page, lambda d: _shown(d, "key"))  # /info answered 401: the page asks for the key
    text = "a moving , lovely film"
    page.find_element(By.ID, "text").send_keys(text)
    page.find_element(By.ID, "predict").click()
    error = _wait(page, lambda d: _shown(d, "error"))
    assert "API key" in error.text and not page.find_element(By.ID, "result").is_displayed()
    key_box.send_keys("wrong")
    page.find_element(By.ID, "key-button").click()
    _wait(page, lambda d: "refused" in d.find_element(By.ID, "error").text)
    key_box.clear()
    key_box.send_keys(KEY)
    page.find_element(By.ID, "key-button").click()
    _wait(page, lambda d: _shown(d, "info-card"))
    page.find_element(By.ID, "predict").click()
    label = _wait(page, lambda d: d.find_element(By.ID, "label").text and d.find_element(By.ID, "label"))
    expected = _predict(seq_server, text, KEY)
    assert label.text == expected["label"]
    rows = page.find_elements(By.CSS_SELECTOR, "#probabilities .prob")
    shown = {r.get_attribute("data-label"): r.find_element(By.CSS_SELECTOR, ".value").text for r in rows}
    assert shown == {name: f"{100 * p:.1f}%" for name, p in expected["probabilities"].items()}
    assert "negative, positive" in page.find_element(By.ID, "info").text
    screenshot("serve-seq")
    screenshot("serve-seq-phone", phone=True)
    # Nothing is kept: a reload asks for the key again.
    page.refresh()
    _wait(page, lambda d: _shown(d, "key"))
    assert page.execute_script("return window.localStorage.length + window.sessionStorage.length") == 0


def test_a_token_model_highlights_the_entities_predict_finds(page, token_server, screenshot):
    page.get(token_server.url)
    _wait(page, lambda d: _shown(d, "info-card"))
    assert not page.find_element(By.ID, "key-card").is_displayed()  # no key on this server
    text = "EU rejects German call to boycott British lamb ."
    page.find_element(By.ID, "text").send_keys(text)
    page.find_element(By.ID, "predict").click()
    _wait(page, lambda d: _shown(d, "token-result"))
    expected = _predict(token_server, text)
    assert expected["entities"], "the tiny NER model tags something in its training sentence"
    marks = page.find_elements(By.CSS_SELECTOR, "#sentence mark.ent")
    assert [(m.get_attribute("data-type"), m.find_element(By.CSS_SELECTOR, ".etext").text) for m in marks] == \
        [(e["type"], e["text"]) for e in expected["entities"]]
    assert all(m.find_element(By.CSS_SELECTOR, ".type").text == m.get_attribute("data-type") for m in marks)
    # The sentence reads as typed: the highlights only wrap its words.
    assert page.execute_script("var s = document.getElementById('sentence').cloneNode(true);"
                               "s.querySelectorAll('.type').forEach(function (t) { t.remove(); }); return s.textContent;") == text
    screenshot("serve-token")
