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


def test_workers_claim_cells_so_none_is_trained_twice_and_a_dead_workers_cell_is_taken_over(tmp_path):
    """Two workers (threads: the claims are flocks, exclusive between any two opens) on one study folder, a third
    process holding one cell's claim as if it were training it; it is killed, and one worker takes the cell."""
    import collections
    import subprocess
    import sys
    import threading
    import time

    from lsllm import study
    from lsllm.files import atomic_write_json

    spec = {"data": "toy", "task": "seq", "problem": "single-label", "metric": "accuracy", "sizes": [8, 16],
            "methods": ["ls", "sft"], "seeds": 2, "flags": []}
    cells = study.plan(spec["sizes"], spec["methods"], spec["seeds"])
    out = tmp_path / "study"
    held = cells[1]
    (out / study.CLAIMS).mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('held', flush=True)\ntime.sleep(600)", str(out / study.CLAIMS / f"{held.name}.lock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    trained, lock, both = [], threading.Lock(), threading.Event()

    def fake_train(cell, root, again):
        with lock:
            trained.append((cell.name, threading.current_thread().name))
            if len({who for _, who in trained}) == 2:
                both.set()
        assert both.wait(60), "the other worker never trained a cell"  # each worker trains at least one cell
        root.mkdir(parents=True)
        atomic_write_json(root / "metrics.json", {"test": {"accuracy": cell.size / 100}, "validation": {"accuracy": 0.5}})
        atomic_write_json(root / "run.json", {"seconds": 1.0})
        return root

    errors = []

    def worker():
        try:
            study.work(out, cells, fake_train, spec)
        except BaseException as err:  # noqa: B036 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(trained) < len(cells) - 1:  # every cell but the held one
            assert time.monotonic() < deadline and not errors, (trained, errors)
            time.sleep(0.05)
        time.sleep(0.5)
        assert held.name not in {name for name, _ in trained}  # held by a live process: nobody trains it
    finally:
        holder.kill()  # the holder dies (as a worker killed mid-cell): the kernel drops its lock
        holder.wait()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert collections.Counter(name for name, _ in trained) == {cell.name: 1 for cell in cells}
    assert {who for _, who in trained} == {"worker-0", "worker-1"}
    result = json.loads((out / "study.json").read_text())
    assert sorted(c["run"] for c in result["cells"]) == sorted(cell.name for cell in cells)
    assert {(s["size"], s["method"], s["n"]) for s in result["summary"]} == {(n, m, 2) for n in (8, 16) for m in ("ls", "sft")}


def test_study_workers_train_every_cell_once_in_two_processes(tmp_path, tiny_model_dir, tiny_seq_data, capfd):
    import collections
    import re

    out = tmp_path / "study"
    assert main(["study", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--sizes", "8", "16", "--methods", "ls",
                 "--seeds", "2", "--output", str(out), "--workers", "2", *CELL_FLAGS]) == 0
    err = capfd.readouterr().err
    lines = re.findall(r"training (\S+) \(worker ([^)]+)\)", err)
    names = [f"ls-n{n}-s{s}" for n in (8, 16) for s in (0, 1)]
    assert collections.Counter(name for name, _ in lines) == {name: 1 for name in names}, err[-3000:]
    study = json.loads((out / "study.json").read_text())
    assert sorted(c["run"] for c in study["cells"]) == sorted(names)
    assert all(c["status"] == "done" and 0 <= c["test"] <= 1 for c in study["cells"])
    assert {(s["size"], s["n"]) for s in study["summary"]} == {(8, 2), (16, 2)}
    for name in names:  # each an ordinary run, of its own size and seed, its command the study's
        cfg = RunConfig.load(out / name / "config.yaml")
        assert f"ls-n{cfg.data.train_limit}-s{cfg.train.seed}" == name
        assert "--workers" in json.loads((out / name / "run.json").read_text())["command"]
    assert (out / "report.html").is_file() and (out / "study.png").is_file()


def test_a_cells_config_is_the_studys_with_the_cells_settings(tmp_path):
    """A cell's run config is the study's config object with the cell's settings set, the same as `lsllm train` given
    the study's flags and the cell's; the study's flags are read once per training command (`study.trainer`)."""
    from lsllm import flags, study

    spec = {"flags": ["--data", "x.tsv", "--epochs", "2", "--template", "plain"]}
    for method, extra in (("unls", ["--bidirectional"]), ("repeat", ["--attention", "repeat"])):
        cell = study.Cell(16, method, 1)
        cfg, explicit = study.cell_config(spec, cell, tmp_path / cell.name, resume=False)
        assert (cfg, explicit) == flags.config_from_flags(
            [*spec["flags"], *extra, "--train-limit", "16", "--subset-seed", "1", "--seed", "1", "--output",
             str(tmp_path / cell.name)])
    sft, _ = study.cell_config(spec, study.Cell(16, "sft", 0), tmp_path / "s", resume=False)
    assert type(sft) is SFTRunConfig and sft.sft.template == "plain" and sft.data.train_limit == 16
    resumed, given = study.cell_config(spec, study.Cell(16, "sft", 0), tmp_path / "s", resume=True)
    assert type(resumed) is SFTRunConfig and resumed.train.resume and given == {"train.output", "train.resume"}
