"""`lsllm record`: a run's, study's or tune's small files copied into results/, weights and checkpoints left out, nothing silently."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from lsllm.cli import main


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def run(seq_run, tmp_path) -> Path:
    """A copy of the tiny run with a checkpoint and an eval file, as a run has after `lsllm eval`."""
    copy = tmp_path / "runs" / "sst-tiny"
    shutil.copytree(seq_run, copy)
    (copy / "checkpoints" / "checkpoint-6").mkdir(parents=True, exist_ok=True)
    (copy / "checkpoints" / "checkpoint-6" / "trainer_state.json").write_text("{}")
    (copy / "eval-test.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    return copy


def test_a_run_is_recorded_with_every_small_file_and_without_weights_or_checkpoints(run, tmp_path, capsys):
    results = tmp_path / "results" / "tiny"
    assert main(["record", str(run), "--to", str(results), "--machine", "test machine"]) == 0
    assert "sst-tiny (run)" in capsys.readouterr().out
    copy = results / "sst-tiny"
    for name in ("metrics.json", "run.json", "config.yaml", "predictions.jsonl", "report.txt", "eval-test.json",
                 "logs/trainer_state.json", "model/lsllm.json"):
        assert (copy / name).read_bytes() == (run / name).read_bytes(), name
    assert not list(copy.rglob("*.safetensors")) and not (copy / "checkpoints").exists()
    record = json.loads((copy / "RECORD.json").read_text())
    assert record["kind"] == "run" and record["machine"] == "test machine"
    assert record["left_out"]["checkpoints/"] == "checkpoints"
    assert record["left_out"]["model/adapter_model.safetensors"] == "weights"
    source = {f for f in _files(run) if not f.startswith("checkpoints/")}
    assert source == set(record["copied"]) | set(record["left_out"]) - {"checkpoints/"}  # nothing dropped silently
    assert _files(copy) == set(record["copied"]) | {"RECORD.json"}
    for name, entry in record["copied"].items():
        assert entry["sha256"] == hashlib.sha256((run / name).read_bytes()).hexdigest()
    assert record["machines_in_runs"][0]["cpu"]  # run.json now says what the run ran on


def test_files_over_the_size_limit_stay_out_and_are_listed(run, tmp_path):
    size = (run / "predictions.jsonl").stat().st_size
    assert main(["record", str(run), "--to", str(tmp_path / "r"), "--max-file-size", str(size - 1)]) == 0
    record = json.loads((tmp_path / "r" / "sst-tiny" / "RECORD.json").read_text())
    assert record["left_out"]["predictions.jsonl"] == f"{size} bytes, over the {size - 1}-byte limit"
    assert not (tmp_path / "r" / "sst-tiny" / "predictions.jsonl").exists()
    assert "metrics.json" in record["copied"]


def test_a_study_and_a_tune_are_recorded_with_their_cells(seq_run, tmp_path):
    study = tmp_path / "studies" / "toy"
    shutil.copytree(seq_run, study / "ls-n36-s0")
    (study / "study.json").write_text(json.dumps({"cells": ["ls-n36-s0"]}))
    tune = tmp_path / "tunes" / "toy-tune"
    shutil.copytree(seq_run, tune / "trial-0000")
    (tune / "tune.json").write_text(json.dumps({"best": {"trial": 0}}))
    (tune / "tune.db").write_bytes(b"SQLite format 3\x00")
    assert main(["record", str(study), str(tune), "--to", str(tmp_path / "results" / "toy")]) == 0
    study_record = json.loads((tmp_path / "results" / "toy" / "toy" / "RECORD.json").read_text())
    tune_record = json.loads((tmp_path / "results" / "toy" / "toy-tune" / "RECORD.json").read_text())
    assert study_record["kind"] == "study" and tune_record["kind"] == "tune"
    assert {"study.json", "ls-n36-s0/metrics.json", "ls-n36-s0/config.yaml"} <= set(study_record["copied"])
    assert study_record["left_out"]["ls-n36-s0/model/adapter_model.safetensors"] == "weights"
    assert {"tune.json", "trial-0000/metrics.json"} <= set(tune_record["copied"])
    assert tune_record["left_out"]["tune.db"] == "database"


@pytest.mark.parametrize("case", ["not a run", "missing", "recorded already", "same names"])
def test_bad_record_requests_are_one_line_and_copy_nothing(run, tmp_path, capsys, case):
    results = tmp_path / "results" / "x"
    folders = [str(run)]
    if case == "not a run":
        (tmp_path / "empty").mkdir()
        folders = [str(run), str(tmp_path / "empty")]
    elif case == "missing":
        folders = [str(tmp_path / "nowhere")]
    elif case == "recorded already":
        assert main(["record", str(run), "--to", str(results)]) == 0
        before = _files(results)
    elif case == "same names":
        other = tmp_path / "elsewhere" / "sst-tiny"
        shutil.copytree(run, other, ignore=shutil.ignore_patterns("checkpoints"))
        folders = [str(run), str(other)]
    capsys.readouterr()
    assert main(["record", *folders, "--to", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    if case == "recorded already":
        assert _files(results) == before and "exists already" in err
    else:
        assert not results.exists() or not any(results.iterdir())
