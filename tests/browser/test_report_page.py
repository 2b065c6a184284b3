"""The report of tiny real runs, opened from a file in headless Chromium: what a person sees there."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.browser.conftest import require_selenium

require_selenium()
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from lsllm.report import write_report  # noqa: E402
from lsllm.report.analysis import spans  # noqa: E402


@pytest.fixture(scope="module")
def seq_report(report_seq_run, tmp_path_factory):
    return write_report([report_seq_run], tmp_path_factory.mktemp("seq-report") / "report.html")


@pytest.fixture(scope="module")
def token_report(report_token_run, tmp_path_factory):
    return write_report([report_token_run], tmp_path_factory.mktemp("token-report") / "report.html")


def _visible(elements):
    return [e for e in elements if e.is_displayed()]


def _cell(section, split: str, metric: str) -> str:
    return section.find_element(By.CSS_SELECTOR, f'table.metrics tr[data-split="{split}"] td[data-metric="{metric}"]').text


def test_the_seq_report_shows_the_runs_metrics_and_confusion(page, seq_report, report_seq_run, screenshot):
    page.get(seq_report.as_uri())
    # Nothing was fetched: the page is complete as a file (and its CSP would refuse anything else).
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    metrics = json.loads((report_seq_run / "metrics.json").read_text())
    section = page.find_element(By.CSS_SELECTOR, "section.run")
    for split in ("validation", "test"):
        for key in ("accuracy", "f1_macro", "f1_weighted"):
            assert _cell(section, split, key) == f"{100 * metrics[split][key]:.2f}", (split, key)
        assert _cell(section, split, "n_examples") == str(metrics[split]["n_examples"])
    for label, scores in metrics["test"]["per_class"].items():
        row = section.find_element(By.CSS_SELECTOR, f'table.per-class tr[data-class="{label}"]')
        assert row.find_element(By.CSS_SELECTOR, '[data-metric="recall"]').text == f"{100 * scores['recall']:.2f}"
        assert row.find_element(By.CSS_SELECTOR, '[data-metric="support"]').text == str(scores["support"])
    cells = _visible(section.find_elements(By.CSS_SELECTOR, "table.confusion td.cell"))
    assert sum(int(c.text) for c in cells) == metrics["test"]["n_examples"] == 12
    shown = {(c.get_attribute("data-gold"), c.get_attribute("data-predicted")): int(c.text) for c in cells}
    labels = metrics["test"]["confusion_matrix"]["labels"]
    assert shown == {(g, p): n for g, row in zip(labels, metrics["test"]["confusion_matrix"]["matrix"], strict=True)
                     for p, n in zip(labels, row, strict=True)}
    curves = section.find_element(By.CSS_SELECTOR, "figure.plot svg")
    assert curves.is_displayed() and curves.size["width"] > 300
    screenshot("report-seq")
    screenshot("report-seq-phone", phone=True)


def test_filtering_the_errors_by_class_leaves_only_that_class(page, seq_report, report_seq_run, screenshot):
    page.get(seq_report.as_uri())
    records = [json.loads(line) for line in (report_seq_run / "predictions.jsonl").read_text().splitlines()]
    wrong = [r for r in records if r["label"] != r["gold"]]
    assert wrong, "the tiny run gets some test examples wrong"
    table = page.find_element(By.CSS_SELECTOR, "table.errors")
    assert len(_visible(table.find_elements(By.CSS_SELECTOR, "tbody tr"))) == len(wrong)
    controls = page.find_element(By.CSS_SELECTOR, ".controls[data-controls^='errors-']")
    gold = Select(controls.find_element(By.CSS_SELECTOR, "select[data-filter='gold']"))
    for label, count in Counter(r["gold"] for r in wrong).items():
        gold.select_by_value(label)
        rows = _visible(table.find_elements(By.CSS_SELECTOR, "tbody tr"))
        assert len(rows) == count and {r.find_element(By.CSS_SELECTOR, "td.gold").text for r in rows} == {label}
        assert controls.find_element(By.CSS_SELECTOR, ".count").text == f"showing {count} of {len(wrong)}"
        screenshot(f"report-errors-gold-{label}")
    gold.select_by_value("")
    predicted = Select(controls.find_element(By.CSS_SELECTOR, "select[data-filter='predicted']"))
    label = wrong[0]["label"]
    predicted.select_by_value(label)
    rows = _visible(table.find_elements(By.CSS_SELECTOR, "tbody tr"))
    assert rows and {r.find_element(By.CSS_SELECTOR, "td.predicted").text for r in rows} == {label}
    predicted.select_by_value("")
    Select(controls.find_element(By.CSS_SELECTOR, "select[data-sort]")).select_by_value("asc")
    shown = [float(r.find_element(By.CSS_SELECTOR, "td.confidence").text) for r in _visible(table.find_elements(By.CSS_SELECTOR, "tbody tr"))]
    assert shown == sorted(shown) and shown[0] == pytest.approx(100 * min(r["score"] for r in wrong), abs=0.006)
    first = _visible(table.find_elements(By.CSS_SELECTOR, "tbody tr"))[0]
    probabilities = first.find_elements(By.CSS_SELECTOR, ".prob")
    assert len(probabilities) == 2 and all(p.is_displayed() for p in probabilities)


def test_the_ner_report_highlights_each_entity_type_and_each_kind_of_mistake(page, token_report, report_token_run, screenshot):
    page.get(token_report.as_uri())
    records = [json.loads(line) for line in (report_token_run / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((report_token_run / "metrics.json").read_text())["test"]
    section = page.find_element(By.CSS_SELECTOR, "section.run")
    assert _cell(section, "test", "f1") == f"{100 * metrics['f1']:.2f}"
    for kind, scores in metrics["per_type"].items():
        row = section.find_element(By.CSS_SELECTOR, f'table.per-type tr[data-type="{kind}"]')
        assert row.find_element(By.CSS_SELECTOR, '[data-metric="f1"]').text == f"{100 * scores['f1']:.2f}"
    Select(section.find_element(By.CSS_SELECTOR, "select[data-filter='status']")).select_by_value("")  # all sentences
    gold_types = {kind for r in records for kind, _, _ in spans(r["gold"])}
    assert gold_types == {"PER", "ORG", "LOC", "MISC"}
    for kind in sorted(gold_types):
        marks = _visible(section.find_elements(By.CSS_SELECTOR, f'.line.gold mark.ent[data-type="{kind}"]'))
        assert marks, f"no gold {kind} entity highlighted"
        assert marks[0].find_element(By.CSS_SELECTOR, ".lab").text.startswith(kind)
    # Each kind of mistake looks different: its border style (and its label) say which it is.
    borders = {}
    for mark in _visible(section.find_elements(By.CSS_SELECTOR, "mark.ent")):
        borders.setdefault(mark.get_attribute("data-status"), mark.value_of_css_property("border-top-style"))
    assert {"missed", "spurious"} <= set(borders), borders  # the tiny model makes both
    assert len(set(borders.values())) == len(borders), borders
    screenshot("report-ner")
    screenshot("report-ner-phone", phone=True)
    type_filter = Select(section.find_element(By.CSS_SELECTOR, "select[data-filter='type']"))
    for kind in sorted(gold_types):
        type_filter.select_by_value(kind)
        sentences = _visible(section.find_elements(By.CSS_SELECTOR, ".sentence"))
        expected = sum(1 for r in records if kind in {k for k, _, _ in spans(r["gold"]) + spans(r["tags"])})
        assert len(sentences) == expected
        assert all(s.find_elements(By.CSS_SELECTOR, f'mark.ent[data-type="{kind}"]') for s in sentences)
