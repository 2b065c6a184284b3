"""`lsllm report` on real tiny runs: one offline file, robust to missing files, runs compared, studies drawn.

What a person sees in a browser is tested in tests/browser/; here the page's content and the
reading of run directories are checked without one.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pytest

from lsllm.cli import main
from lsllm.errors import ConfigError
from lsllm.report import collect, write_report


class _References(HTMLParser):
    """Every URL-bearing attribute, inline style, and the CSP of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.csp: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "xlink:href", "action", "poster", "data"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy":
            self.csp = attrs.get("content")


def _references(html: str) -> _References:
    parser = _References()
    parser.feed(html)
    return parser


def test_a_run_report_is_one_offline_file_with_the_runs_numbers(report_seq_run):
    path = write_report([report_seq_run])
    assert path == report_seq_run / "report.html"
    html = path.read_text()
    refs = _references(html)
    assert refs.csp is not None and "default-src 'none'" in refs.csp
    # Only in-page anchors (#...), matplotlib's in-SVG references and the empty data: favicon: nothing to fetch.
    assert refs.urls and all(url.startswith("#") or url == "data:," for url in refs.urls), refs.urls
    assert "url(" not in html.replace("url(#", "") and "@import" not in html
    metrics = json.loads((report_seq_run / "metrics.json").read_text())
    assert f"{100 * metrics['test']['accuracy']:.2f}" in html
    assert "<svg" in html and "selected: step" in html  # the curves, the chosen checkpoint marked
    info = json.loads((report_seq_run / "model" / "lsllm.json").read_text())
    assert f"transformers {info['versions']['transformers']}" in html


def test_texts_from_the_data_are_shown_not_run(report_seq_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(report_seq_run, run, ignore=shutil.ignore_patterns("checkpoints", "model", "logs"))
    records = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    records[0].update(text='<script>alert("x")</script> & <b>bold</b>', gold="negative", label="positive")
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    html = write_report([run]).read_text()
    assert "<script>alert" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html


def test_missing_files_leave_notes_not_errors(report_seq_run, tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(report_seq_run / "config.yaml", run)  # a run killed before its first checkpoint
    html = write_report([run], tmp_path / "bare.html").read_text()
    assert "metrics.json: no results yet" in html and "No metrics yet." in html
    assert "no training log found" in html and "No predictions.jsonl" in html
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="neither a run"):
        write_report([empty])


def test_curves_come_from_trainer_state_or_tensorboard_alike(report_seq_run, tmp_path):
    from_state = collect.read_run(report_seq_run).curves
    assert from_state.source.endswith("trainer_state.json") and from_state.selected_step is not None
    assert [step for step, _ in from_state.loss] == list(range(1, 7))
    assert [s for s, _ in from_state.validation] == [0, 3, 6]  # step 0: validation before training (head from the label names)
    run = tmp_path / "run"
    shutil.copytree(report_seq_run, run, ignore=shutil.ignore_patterns("checkpoints", "model", "trainer_state.json"))
    from_events = collect.read_run(run).curves
    assert from_events.source == "logs/ (TensorBoard)"
    for events, state in ((from_events.loss, from_state.loss), (from_events.validation, from_state.validation)):
        assert [step for step, _ in events] == [step for step, _ in state]
        assert [v for _, v in events] == pytest.approx([v for _, v in state], rel=1e-6)  # TensorBoard stores float32
    assert from_events.selected_step == from_state.selected_step


def test_several_runs_get_one_comparison_table(report_seq_run, report_token_run, tmp_path):
    out = tmp_path / "both.html"
    assert main(["report", str(report_seq_run), str(report_token_run), "--output", str(out)]) == 0
    html = out.read_text()
    assert 'id="comparison-table"' in html and html.count('<section class="run card"') == 2
    seq = json.loads((report_seq_run / "metrics.json").read_text())["test"]
    token = json.loads((report_token_run / "metrics.json").read_text())["test"]
    assert f'data-metric="accuracy">{100 * seq["accuracy"]:.2f}<' in html
    assert f'data-metric="f1">{100 * token["f1"]:.2f}<' in html
    assert "LS-unLLM" in html and "LS-LLM" in html


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "neither a run" in err and "Traceback" not in err and err.count("\n") == 1


def test_a_study_shows_its_table_plot_and_links_its_cells(tmp_path, tiny_model_dir, tiny_seq_data):
    study = tmp_path / "study"
    assert main(["study", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--sizes", "8", "16",
                 "--methods", "ls", "--seeds", "2", "--output", str(study), "--max-steps", "2", "--batch-size", "4",
                 "--lora-r", "4", "--dtype", "float32", "--eval-limit", "6"]) == 0
    spec = json.loads((study / "study.json").read_text())
    first, second = (cell["run"] for cell in spec["cells"][:2])
    write_report([study / first])  # one cell with its own report, one without
    (study / second / "report.html").unlink(missing_ok=True)
    html = write_report([study]).read_text()
    assert (study / "report.html").is_file()
    assert html.count("<svg") == 1 and "Error bars" in html
    assert f'href="{first}/report.html"' in html  # the cell's own report, relative: the folder can move
    assert f'href="{second}"' in html  # a cell without a report links to its folder
    shown = html.split('data-metric="mean">')[1:]
    assert [part.split("<", 1)[0] for part in shown] == [f"{100 * s['mean']:.2f}" for s in spec["summary"]]
    assert html.count("<tr data-status=\"done\">") == len(spec["cells"]) == 4
    assert "LS-LLM (causal, label-supervised head)" in html  # the method explained, not only its key
