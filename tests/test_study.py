"""`lsllm study` end to end on a tiny model: cells are ordinary runs, subsets shared, resumable, summarised."""

from __future__ import annotations

import json

import pytest

from lsllm import training
from lsllm.cli import main
from lsllm.config import RunConfig
from lsllm.data import load_data
from lsllm.sft.config import SFTRunConfig

CELL_FLAGS = ["--max-steps", "2", "--batch-size", "4", "--lora-r", "4", "--dtype", "float32", "--eval-limit", "6",
              "--template", "plain", "--max-new-tokens", "2"]


def _study(out, data, model, *extra):
    return main(["study", "--data", str(data), "--model", str(model), "--sizes", "16", "8", "--methods", "ls", "sft",
                 "--seeds", "2", "--output", str(out), *CELL_FLAGS, *extra])


def test_study_trains_every_cell_on_shared_subsets_and_resumes(tmp_path, tiny_model_dir, tiny_seq_data, monkeypatch, capsys):
    out = tmp_path / "study"
    calls = []
    original = training.train

    def dies_at_the_third_ls_cell(cfg, explicit=frozenset()):
        calls.append(cfg.train.output)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(cfg, explicit)

    monkeypatch.setattr(training, "train", dies_at_the_third_ls_cell)
    assert _study(out, tiny_seq_data, tiny_model_dir) == 130
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/run.json")}
    assert sorted(done_before) == ["ls-n8-s0", "ls-n8-s1", "sft-n8-s0", "sft-n8-s1"]
    monkeypatch.setattr(training, "train", original)
    assert main(["study", "--output", str(out), "--resume"]) == 0
    assert {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/run.json") if p.parent.name in done_before} == done_before

    study = json.loads((out / "study.json").read_text())
    assert len(study["cells"]) == 8 and all(c["status"] == "done" and 0 <= c["test"] <= 1 for c in study["cells"])
    assert {(s["size"], s["method"], s["n"]) for s in study["summary"]} == {(n, m, 2) for n in (8, 16) for m in ("ls", "sft")}
    assert (out / "study.png").stat().st_size > 0 and "| 8 |" in (out / "study.md").read_text()
    assert (out / "report.html").is_file() and (out / "ls-n8-s0" / "report.html").is_file()
    assert "± " in capsys.readouterr().out

    # Each cell is an ordinary run, and at a size and seed both methods saw the same training examples.
    for size in (8, 16):
        for seed in (0, 1):
            ls_cfg = RunConfig.load(out / f"ls-n{size}-s{seed}" / "config.yaml")
            sft_cfg = SFTRunConfig.load(out / f"sft-n{size}-s{seed}" / "config.yaml")
            assert ls_cfg.train.seed == sft_cfg.train.seed == seed and ls_cfg.data.train_limit == size
            ls_train = load_data(ls_cfg.data).splits["train"]
            assert [e.text for e in ls_train] == [e.text for e in load_data(sft_cfg.data).splits["train"]]
            assert len(ls_train) == size
    first = [e.text for e in load_data(RunConfig.load(out / "ls-n8-s0" / "config.yaml").data).splits["train"]]
    other = [e.text for e in load_data(RunConfig.load(out / "ls-n8-s1" / "config.yaml").data).splits["train"]]
    assert first != other  # another seed, another subset


def test_study_refuses_sft_for_token_tasks_and_unknown_flags(tmp_path, tiny_model_dir, tiny_token_data, tiny_seq_data, capsys):
    assert main(["study", "--data", str(tiny_token_data), "--model", str(tiny_model_dir), "--sizes", "4",
                 "--methods", "ls", "sft", "--output", str(tmp_path / "a")]) == 2
    assert "token tasks" in capsys.readouterr().err
    assert main(["study", "--data", str(tiny_seq_data), "--sizes", "4", "--no-such-flag", "--output", str(tmp_path / "b")]) == 2
    assert "--no-such-flag" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--no-such-flag"])  # other commands keep argparse's own error


def test_a_regression_study_compares_on_pearson(tmp_path, tiny_model_dir):
    from tests.problems.test_problem_runs import SCORES

    data = tmp_path / "scores"
    data.mkdir()
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        (data / f"{split}.tsv").write_text("text\tscore\n" + "".join(f"{t}\t{s:.1f}\n" for _ in range(repeat) for t, s in SCORES.items()))
    out = tmp_path / "study"
    assert main(["study", "--data", str(data), "--model", str(tiny_model_dir), "--sizes", "12", "--methods", "ls", "sft",
                 "--seeds", "1", "--output", str(out), "--problem", "regression", *CELL_FLAGS, "--max-new-tokens", "4"]) == 0
    study = json.loads((out / "study.json").read_text())
    assert study["metric"] == "pearson" and study["problem"] == "regression"
    assert {c["method"] for c in study["cells"]} == {"ls", "sft"} and all(isinstance(c["test"], float) for c in study["cells"])
    assert "test pearson (x100)" in (out / "study.md").read_text()
