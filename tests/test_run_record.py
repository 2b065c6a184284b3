"""The typed, versioned run record (runs.RunInfo / SFTInfo / ExportInfo): old files upgrade, newer ones are refused,
nothing is lost; and run folders saved before the record existed (tests/fixtures/old-runs) load, predict and evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lsllm.errors import ConfigError
from lsllm.runs import SCHEMA_KEY, ExportInfo, RunInfo, SFTInfo

OLD_RUNS = Path(__file__).parent / "fixtures" / "old-runs"

# model/lsllm.json as the first lsllm wrote it (67d1074): no prompt, attention, finetune, problem, problem_state, fields
FIRST_RUN_INFO = {"task": "seq", "labels": ["negative", "positive"], "base_model": "smollm2-135m",
                  "weights": {"kind": "local", "path": "/models/smollm2"}, "bidirectional": False, "unmask_layers": None,
                  "pooling": "last", "max_length": 256, "label_all_subtokens": False, "data": "sst2",
                  "versions": {"lsllm": "0.1.0", "torch": "2.5.0", "transformers": "4.46.0", "peft": "0.13.0"}}
# model/lsllm-sft.json as the first SFT runs wrote it (e2726b2)
FIRST_SFT_INFO = {"method": "sft", "task": "seq", "labels": ["negative", "positive"], "template": "chat",
                  "base_model": "smollm2-135m", "weights": {"kind": "local", "path": "/models/smollm2"},
                  "versions": {"lsllm": "0.1.0", "trl": "0.12.0"}}


def test_a_first_version_run_info_reads_with_the_defaults_its_readers_gave():
    info = RunInfo.from_dict(FIRST_RUN_INFO, "run/model/lsllm.json")
    assert (info.task, info.labels, info.max_length, info.label_all_subtokens) == ("seq", ["negative", "positive"], 256, False)
    assert (info.finetune, info.prompt, info.attention, info.problem, info.problem_state, info.fields) == (
        "lora", None, None, None, None, None)
    assert not info.repeat and info.extra == {}
    saved = info.to_dict()
    assert saved[SCHEMA_KEY] == RunInfo.SCHEMA_VERSION and set(FIRST_RUN_INFO) < set(saved)
    assert {k: saved[k] for k in FIRST_RUN_INFO} == FIRST_RUN_INFO  # nothing the file held changed on the way
    assert RunInfo.from_dict(json.loads(json.dumps(saved)), "x") == info


def test_the_least_a_version_0_file_held_is_enough_and_the_rest_are_readers_defaults():
    info = RunInfo.from_dict({"task": "token", "labels": ["O", "B-PER"], "max_length": 64, "label_all_subtokens": True},
                             "lsllm.json")
    assert (info.weights, info.versions, info.bidirectional, info.base_model, info.pooling) == ({}, {}, False, None, None)
    sft = SFTInfo.from_dict(FIRST_SFT_INFO, "lsllm-sft.json")
    assert (sft.finetune, sft.problem, sft.problem_state, sft.template) == ("lora", None, None, "chat")
    export = ExportInfo.from_dict({"model": "model.onnx", "task": "seq", "labels": ["a", "b"], "max_length": 32},
                                  "lsllm-export.json")
    assert (export.int8_model, export.max_position_embeddings, export.label_all_subtokens) == (None, None, False)
    assert not export.bidirectional and not export.repeat


def test_unknown_keys_are_kept_and_written_back():
    info = RunInfo.from_dict({**FIRST_RUN_INFO, "note": {"by": "a later lsllm"}}, "lsllm.json")
    assert info.extra == {"note": {"by": "a later lsllm"}}
    assert info.to_dict()["note"] == {"by": "a later lsllm"}
    fields = {k: v for k, v in RunInfo.from_dict(FIRST_RUN_INFO, "x").to_dict().items() if k != SCHEMA_KEY}
    with pytest.raises(ValueError, match="task"):  # extra holds only what the record has no field for
        RunInfo(**fields, extra={"task": "seq"})


@pytest.mark.parametrize("kind", [RunInfo, SFTInfo, ExportInfo])
def test_a_file_of_a_newer_version_is_refused_in_one_line_naming_it(kind, tmp_path):
    path = tmp_path / kind.FILE
    newer = {**FIRST_RUN_INFO, SCHEMA_KEY: kind.SCHEMA_VERSION + 1, "versions": {"lsllm": "9.0.0"}}
    with pytest.raises(ConfigError) as err:
        kind.from_dict(newer, path)
    message = str(err.value)
    assert message.startswith(f"{path}: written by a newer lsllm (9.0.0)") and "upgrade lsllm" in message
    assert "\n" not in message


@pytest.mark.parametrize(("change", "named"), [
    ({"max_length": True}, "max_length"),  # a bool is not a length
    ({"labels": ["a", 1]}, "labels"),
    ({"labels": []}, "no labels"),
    ({"task": "nope"}, "task 'nope'"),
    ({"finetune": "half"}, "finetune 'half'"),
    ({SCHEMA_KEY: "1"}, SCHEMA_KEY),
    ({"pooling": 3}, "pooling"),
])
def test_a_damaged_file_is_one_line_naming_it_and_the_key(change, named):
    with pytest.raises(ConfigError) as err:
        RunInfo.from_dict({**FIRST_RUN_INFO, **change}, "run/model/lsllm.json")
    message = str(err.value)
    assert message.startswith("run/model/lsllm.json: damaged (") and named in message and "retrain or restore" in message


def test_a_current_version_file_must_hold_every_key():
    saved = RunInfo.from_dict(FIRST_RUN_INFO, "x").to_dict()
    del saved["prompt"]  # a version-1 file is written whole: a missing key is damage, not an old file
    with pytest.raises(ConfigError, match=r"damaged \(prompt missing\)"):
        RunInfo.from_dict(saved, "lsllm.json")


# ------------------------------------------------------------------------- run folders saved before the record existed


@pytest.fixture
def old_runs(tmp_path, monkeypatch) -> Path:
    """A copy of tests/fixtures/old-runs (made by its make_old_runs.py with the lsllm of 4ec04cd), as the working
    folder: the runs name their base model and data by the relative paths they were trained with."""
    root = tmp_path / "old-runs"
    shutil.copytree(OLD_RUNS, root)
    monkeypatch.chdir(root)
    return root


def _saved(run: Path, name: str = "predictions.jsonl") -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(("folder", "name"), [("seq/model", "lsllm.json"), ("regression/model", "lsllm.json"),
                                              ("ner/model", "lsllm.json"), ("sft/model", "lsllm-sft.json"),
                                              ("export", "lsllm-export.json")])
def test_the_fixtures_are_of_the_format_before_the_record(folder, name):
    assert SCHEMA_KEY not in json.loads((OLD_RUNS / folder / name).read_text())  # version 0: what the upgrade reads


@pytest.mark.parametrize("name", ["seq", "regression"])
def test_an_old_sequence_run_loads_predicts_as_it_did_and_evaluates_to_its_metrics(old_runs, name):
    from lsllm.pipeline import evaluate_run, load_run
    from lsllm.runs import RunDir

    info = RunDir(old_runs / name).run_info()
    assert info.finetune == "lora" and info.prompt and info.extra == {}
    classifier, _ = load_run(name, dtype="float32")
    assert classifier.problem.state() == info.problem_state  # regression: the train mean, std and scale restored
    saved = _saved(old_runs / name)
    records = classifier.predict_texts([r["text"] for r in saved])
    for new, old in zip(records, saved, strict=True):
        if name == "seq":
            assert new["label"] == old["label"]
            assert new["probabilities"] == pytest.approx(old["probabilities"], abs=1e-4)
        else:
            assert new["value"] == pytest.approx(old["value"], abs=1e-4)
    metrics, _ = evaluate_run(name, "test", dtype="float32")
    expected = json.loads((old_runs / name / "metrics.json").read_text())["test"]
    headline = "accuracy" if name == "seq" else "pearson"
    assert metrics["n_examples"] == expected["n_examples"] and metrics[headline] == pytest.approx(expected[headline], abs=1e-4)


def test_an_old_full_finetune_ner_run_loads_and_tags_as_it_did(old_runs):
    from lsllm.pipeline import evaluate_run, load_run

    classifier, _ = load_run("ner", dtype="float32")
    saved = _saved(old_runs / "ner")
    records = classifier.predict_tokens([r["tokens"] for r in saved])
    assert [r["tags"] for r in records] == [r["tags"] for r in saved]
    metrics, _ = evaluate_run("ner", "test", dtype="float32")
    assert metrics["f1"] == pytest.approx(json.loads((old_runs / "ner" / "metrics.json").read_text())["test"]["f1"])


def test_an_old_sft_run_evaluates_to_its_metrics(old_runs):
    from lsllm.runs import RunDir
    from lsllm.sft.evaluation import evaluate_sft

    info = RunDir(old_runs / "sft").sft_info()
    assert (info.template, info.problem, info.finetune) == ("plain", "single-label", "lora")
    metrics = evaluate_sft("sft", split="test")
    expected = json.loads((old_runs / "sft" / "metrics.json").read_text())["test"]
    assert {k: metrics[k] for k in ("accuracy", "irregular")} == {k: expected[k] for k in ("accuracy", "irregular")}


def test_an_old_export_info_runs_its_graph(old_runs, tmp_path):
    """The old lsllm-export.json beside a graph exported now from the same run: OnnxClassifier reads it (version 0)
    and predicts what the run predicted."""
    pytest.importorskip("onnxruntime")
    from lsllm.export import OnnxClassifier, export_run

    export_run("seq", tmp_path / "export")
    shutil.copy(old_runs / "export" / ExportInfo.FILE, tmp_path / "export" / ExportInfo.FILE)
    classifier = OnnxClassifier(tmp_path / "export")
    assert classifier.info.max_position_embeddings == 128 and classifier.info.prompt == "Text: {text}\nLabel:"
    saved = _saved(old_runs / "seq")
    for new, old in zip(classifier.predict_texts([r["text"] for r in saved]), saved, strict=True):
        assert new["label"] == old["label"] and new["probabilities"] == pytest.approx(old["probabilities"], abs=1e-4)


def test_a_report_reads_old_runs_without_notes_about_their_info(old_runs):
    from lsllm.report.collect import read_run

    for name in ("seq", "ner", "sft"):
        run = read_run(old_runs / name)
        assert run.info is not None and not any("lsllm" in note and ".json" in note for note in run.notes), run.notes
    assert read_run(old_runs / "ner").ls_info.bidirectional and read_run(old_runs / "sft").ls_info is None
