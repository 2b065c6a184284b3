"""`GET /` of `lsllm serve` for the other problem types and for runs on several text fields.

The tiny sequence run is served as a sentence-pair classifier (fields premise + hypothesis), as a
multi-label classifier and as a regressor (`dataclasses.replace` of its classifier): the page must
ask for each field, and show what `Classifier.predict_texts` returns for what was typed.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.browser.conftest import require_selenium

require_selenium()
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from lsllm.problems import MultiLabel, Regression  # noqa: E402
from lsllm.serve.app import create_app  # noqa: E402

from .conftest import LiveServer  # noqa: E402

PAIR = {"premise": "a gripping , beautifully acted film", "hypothesis": "the film is lovely"}
TEXT = "a moving , lovely film"


@pytest.fixture(scope="module")
def seq_classifier(report_seq_run):
    from lsllm.pipeline import load_run

    return load_run(report_seq_run, dtype="float32", device="cpu")[0]


@pytest.fixture(scope="module")
def run_info(report_seq_run):
    from lsllm.runs import RunDir

    return RunDir(report_seq_run).run_info()


def _serve(classifier, run_info):
    return LiveServer(create_app(classifier, run_info=run_info))


@pytest.fixture(scope="module")
def pair(seq_classifier, run_info):
    # a pair run: its prompt (the single-text run's, chosen from its one field) cannot name these fields
    classifier = dataclasses.replace(seq_classifier, fields=["premise", "hypothesis"], prompt=None)
    with _serve(classifier, run_info) as server:
        yield classifier, server


@pytest.fixture(scope="module")
def multi(seq_classifier, run_info):
    classifier = dataclasses.replace(seq_classifier, problem=MultiLabel([0.5, 0.5]))
    with _serve(classifier, run_info) as server:
        yield classifier, server


@pytest.fixture(scope="module")
def regression(seq_classifier, run_info):
    classifier = dataclasses.replace(seq_classifier, problem=Regression())
    with _serve(classifier, run_info) as server:
        yield classifier, server


def _wait(driver, condition, timeout=20):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def _shown(driver, element_id: str):
    element = driver.find_element(By.ID, element_id)
    return element if element.is_displayed() else None


def _open(page, server):
    page.get(server.url)
    _wait(page, lambda d: _shown(d, "info-card"))
    assert not page.find_element(By.ID, "key-card").is_displayed()


def _ctrl_enter(page, element):
    element.send_keys(Keys.CONTROL, Keys.ENTER)  # the modifier stays down until the end of the call


def _bars(page) -> dict[str, tuple[str, bool, bool]]:
    """label -> (percentage shown, data-chosen, highlighted) of every probability bar."""
    rows = page.find_elements(By.CSS_SELECTOR, "#probabilities .prob")
    return {r.get_attribute("data-label"): (r.find_element(By.CSS_SELECTOR, ".value").text,
                                            r.get_attribute("data-chosen") == "true",
                                            "top" in r.get_attribute("class").split()) for r in rows}


def test_a_pair_run_asks_for_each_field_and_shows_the_label_predict_gives(page, pair, screenshot):
    classifier, server = pair
    _open(page, server)
    assert not page.find_element(By.ID, "text").is_displayed()  # no single Text box
    boxes = [b for b in page.find_elements(By.CSS_SELECTOR, "#fields textarea") if b.is_displayed()]
    assert [b.get_attribute("data-field") for b in boxes] == ["premise", "hypothesis"]
    for box in boxes:
        label = page.find_element(By.CSS_SELECTOR, f'label[for="{box.get_attribute("id")}"]')
        assert label.is_displayed() and label.text == box.get_attribute("data-field")
    assert "sequence classification, single-label, on premise + hypothesis" in page.find_element(By.ID, "model-line").text
    assert "premise, hypothesis" in page.find_element(By.ID, "info").text
    assert '{"records": [{"premise": "...", "hypothesis": "..."}]}' in page.find_element(By.ID, "curl").text
    # An empty field is the page's own error: nothing is sent.
    premise, hypothesis = boxes
    premise.send_keys(PAIR["premise"])
    page.find_element(By.ID, "predict").click()
    error = _wait(page, lambda d: _shown(d, "error"))
    assert error.text == "Type the hypothesis first." and not page.find_element(By.ID, "result").is_displayed()
    # Ctrl+Enter in either box predicts.
    hypothesis.send_keys(PAIR["hypothesis"])
    _ctrl_enter(page, hypothesis)
    label = _wait(page, lambda d: d.find_element(By.ID, "label").text and d.find_element(By.ID, "label"))
    assert not page.find_element(By.ID, "error").is_displayed()
    expected = classifier.predict_texts([dict(PAIR)])[0]
    assert expected["fields"] == PAIR
    assert page.find_element(By.ID, "result-kind").text == "predicted label"
    assert label.text == expected["label"]
    assert _bars(page) == {name: (f"{100 * p:.1f}%", name == expected["label"], name == expected["label"])
                           for name, p in expected["probabilities"].items()}
    screenshot("serve-pair")
    # Ctrl+Enter in the first box too, after a change.
    page.execute_script("document.getElementById('label').textContent = ''")
    premise.clear()
    premise.send_keys("a dull , lifeless mess")
    _ctrl_enter(page, premise)
    label = _wait(page, lambda d: d.find_element(By.ID, "label").text and d.find_element(By.ID, "label"))
    assert label.text == classifier.predict_texts([{**PAIR, "premise": "a dull , lifeless mess"}])[0]["label"]


@pytest.mark.parametrize("thresholds", [[0.5, 0.5], [0.0, 2.0], [2.0, 2.0]], ids=["half", "first-only", "none"])
def test_a_multi_label_run_shows_the_chosen_labels_and_every_bar(page, multi, thresholds, screenshot):
    classifier, server = multi
    classifier.problem.thresholds = thresholds  # the served classifier's own problem: decides the next request
    _open(page, server)
    assert "sequence classification, multi-label" in page.find_element(By.ID, "model-line").text
    assert page.find_element(By.ID, "text").is_displayed()
    page.find_element(By.ID, "text").send_keys(TEXT)
    page.find_element(By.ID, "predict").click()
    _wait(page, lambda d: _shown(d, "seq-result"))
    expected = classifier.predict_texts([TEXT])[0]
    assert "label" not in expected and set(expected) >= {"labels", "probabilities"}
    assert page.find_element(By.ID, "result-kind").text == "predicted labels"
    chosen = [c.get_attribute("data-label") for c in page.find_elements(By.CSS_SELECTOR, "#label .chosen")]
    assert chosen == expected["labels"]
    none = page.find_elements(By.CSS_SELECTOR, "#label .none")
    if expected["labels"]:
        assert not none
    else:
        assert [n.text for n in none] == ["none above its threshold"]
    if thresholds == [0.0, 2.0]:
        assert expected["labels"] == [classifier.labels[0]]
    bars = _bars(page)
    assert bars == {name: (f"{100 * p:.1f}%", name in expected["labels"], name in expected["labels"])
                    for name, p in expected["probabilities"].items()}
    assert len(bars) == len(classifier.labels)
    screenshot(f"serve-multi-{'-'.join(map(str, thresholds))}")


def test_a_regression_run_shows_the_predicted_value(page, regression, screenshot):
    classifier, server = regression
    _open(page, server)
    assert "sequence classification, regression" in page.find_element(By.ID, "model-line").text
    page.find_element(By.ID, "text").send_keys(TEXT)
    _ctrl_enter(page, page.find_element(By.ID, "text"))
    _wait(page, lambda d: _shown(d, "seq-result"))
    expected = classifier.predict_texts([TEXT])[0]
    assert set(expected) == {"text", "value"}
    assert page.find_element(By.ID, "result-kind").text == "predicted value"
    assert page.find_element(By.ID, "label").text == f"{expected['value']:.3f}"
    assert "labels" not in page.find_element(By.ID, "info").text  # a regressor chooses none
    assert not page.find_element(By.ID, "probabilities").is_displayed()
    screenshot("serve-regression")
