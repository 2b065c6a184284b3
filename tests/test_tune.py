"""`lsllm tune` on a tiny model: trials are run folders, selected on validation, pruned, resumed, shared, reproduced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from transformers import TrainerCallback

from lsllm import training, tune
from lsllm.cli import main
from lsllm.config import RunConfig
from lsllm.errors import ConfigError
from lsllm.problems import family

TRIAL_FLAGS = ["--max-steps", "2", "--batch-size", "4", "--dtype", "float32", "--threads", "1"]


def _tune(out: Path, data: Path, model: Path, *extra: str) -> int:
    return main(["tune", "--data", str(data), "--model", str(model), "--output", str(out), *TRIAL_FLAGS, *extra])


def _trials(out: Path) -> list[dict]:
    return json.loads((out / "tune.json").read_text())["trials"]


def test_trials_are_runs_a_killed_tune_resumes_and_best_yaml_reproduces(tmp_path, tiny_model_dir, tiny_seq_data,
                                                                          monkeypatch, capsys):
    out = tmp_path / "tune"
    original = training.train
    calls = []

    class Killed(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise KeyboardInterrupt  # Ctrl-C in the middle of a trial

    def killed_in_the_second_trial(cfg, explicit=frozenset(), callbacks=()):
        calls.append(cfg.train.output)
        return original(cfg, explicit, [*callbacks, *([Killed()] if len(calls) == 2 else [])])

    monkeypatch.setattr(training, "train", killed_in_the_second_trial)
    assert _tune(out, tiny_seq_data, tiny_model_dir, "--trials", "3", "--pruner", "none") == 130
    assert [(t["number"], t["state"]) for t in _trials(out)] == [(0, "complete"), (1, "failed")]
    assert json.loads((out / "trial-0001" / "tune-trial.json").read_text())["state"] == "failed"
    finished = (out / "trial-0000" / "run.json").stat().st_mtime_ns
    monkeypatch.setattr(training, "train", original)
    capsys.readouterr()

    assert main(["tune", "--output", str(out), "--resume", "--trials", "3"]) == 0  # the same study: one trial added
    trials = _trials(out)
    assert [(t["number"], t["state"]) for t in trials] == [(0, "complete"), (1, "failed"), (2, "complete")]
    assert (out / "trial-0000" / "run.json").stat().st_mtime_ns == finished  # a finished trial is never trained again
    err = capsys.readouterr().err
    assert "trial-0002: validation accuracy" in err and "3 done" in err

    # Every trial is an ordinary run folder with the trial's parameters in its config.
    for t in trials:
        if t["state"] == "complete":
            run = out / t["run"]
            assert (run / "run.json").is_file() and (run / "report.html").is_file()
            cfg = RunConfig.load(run / "config.yaml")
            assert cfg.train.lr == pytest.approx(t["params"]["lr"]) and cfg.lora.r == t["params"]["lora_r"]
            assert cfg.lora.alpha == round(t["params"]["lora_r"] * t["params"]["lora_alpha_ratio"])
            assert cfg.model.attention == t["params"]["attention"] and cfg.train.max_steps == 2
            validation = json.loads((run / "metrics.json").read_text())["validation"]["accuracy"]
            assert t["validation"] == validation

    # Selected on validation; the best trial's test is reported once, from its own metrics.json.
    result = json.loads((out / "tune.json").read_text())
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: (t["validation"], -t["number"]))
    assert result["best"]["trial"] == best["number"] and result["best"]["validation"] == best["validation"]
    best_metrics = json.loads((out / best["run"] / "metrics.json").read_text())
    assert result["best"]["test"] == best_metrics["test"]["accuracy"]
    assert all("test" not in t for t in trials)
    assert "Best: " + best["run"] in (out / "tune.md").read_text()
    assert (out / "history.png").stat().st_size > 0 and (out / "slice.png").is_file()
    page = (out / "report.html").read_text()
    assert 'class="tune card"' in page and "trial-0002" in page

    # best.yaml trains the best trial again: the same validation score, exactly.
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "best.yaml"), "--output", str(again)]) == 0
    assert json.loads((again / "metrics.json").read_text())["validation"] == best_metrics["validation"]


def test_a_pruned_trial_stops_and_its_folder_says_so(tmp_path, tiny_model_dir, tiny_seq_data):
    out = tmp_path / "tune"
    spec = tune.new_spec(["--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--max-steps", "4",
                          "--eval-steps", "1", "--batch-size", "4", "--dtype", "float32", "--threads", "1"])
    lines = []
    result = tune.tune(out, spec, trials=1, pruner=optuna.pruners.ThresholdPruner(upper=-1.0), progress=lines.append)
    (trial,) = result["trials"]
    assert trial["state"] == "pruned" and trial["validation_at"] == 1 and list(trial["intermediate"]) == ["1"]
    mark = json.loads((out / "trial-0000" / "tune-trial.json").read_text())
    assert mark["state"] == "pruned" and mark["step"] == 1
    run = out / "trial-0000"
    assert (run / "config.yaml").is_file() and not (run / "run.json").exists() and not (run / "model").exists()
    assert not list((run / "checkpoints").glob("checkpoint-*"))  # stopped at step 1's evaluation, before any later step
    assert result["best"] is None and "pruned at step 1" in lines[0]
    assert "No trial has completed yet" in (out / "tune.md").read_text()


def test_the_pruning_callback_reports_each_evaluation_and_raises_when_told_but_not_at_the_last_step():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    class State:
        is_world_process_zero = True
        global_step = 0
        max_steps = 9

    trial, state = FakeTrial(), State()
    callback = tune.PruningCallback(trial, "f1")
    state.global_step = 3
    callback.on_evaluate(None, state, None, metrics={"eval_f1": 0.5, "eval_loss": 1.0})
    callback.on_evaluate(None, state, None, metrics={"eval_loss": 1.0})  # no selection metric: nothing reported
    state.global_step = 6
    with pytest.raises(optuna.TrialPruned, match="f1 0.2500 at step 6"):
        callback.on_evaluate(None, state, None, metrics={"eval_f1": 0.25})
    state.global_step = 9  # the last step: the trial has trained to its end and completes
    callback.on_evaluate(None, state, None, metrics={"eval_f1": 0.2})
    assert trial.reports == [(3, 0.5), (6, 0.25), (9, 0.2)]


def test_two_processes_share_one_sqlite_storage(tmp_path, tiny_model_dir, tiny_seq_data):
    out = tmp_path / "tune"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LSLLM_PROGRESS": "0"}
    command = [sys.executable, "-m", "lsllm", "-q", "tune", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir),
               "--output", str(out), "--resume", "--trials", "2", "--pruner", "none", *TRIAL_FLAGS]
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    trials = _trials(out)
    numbers = [t["number"] for t in trials]
    assert len(numbers) >= 2 and len(set(numbers)) == len(numbers)
    assert sorted(p.name for p in out.glob("trial-*")) == [f"trial-{n:04d}" for n in sorted(numbers)]
    assert all(t["state"] == "complete" and (out / t["run"] / "run.json").is_file() for t in trials)
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'tune.db'}")
    assert sorted(t.number for t in study.trials) == sorted(numbers)


def test_the_default_space_fits_the_task_and_the_flags():
    cfg = RunConfig()
    space, left = tune.default_space(family("seq", "single-label"), cfg, set(), ["positive", "negative"])
    assert set(space) == {"lr", "head_lr_ratio", "lora_r", "lora_alpha_ratio", "lora_targets", "lora_dropout", "epochs",
                          "attention", "pooling"}
    assert space["attention"].choices == ["causal", "bidirectional"] and "head_init (it needs --prompt)" in left
    cfg.model.prompt = "Review: {text}\nSentiment:"
    assert "head_init" in tune.default_space(family("seq", "single-label"), cfg, set(), ["positive", "negative"])[0]
    assert "head_init" not in tune.default_space(family("seq", "single-label"), cfg, set(), ["0", "1"])[0]
    token, _ = tune.default_space(family("token"), RunConfig(), {"train.lr"}, ["O", "B-PER"], fixed=["lora_dropout"])
    assert token["attention"].choices == ["bidirectional", "repeat"]
    assert not {"pooling", "head_init", "lr", "lora_dropout"} & set(token)
    with pytest.raises(ConfigError, match="--fixed nope"):
        tune.default_space(family("seq"), RunConfig(), set(), ["a"], fixed=["nope"])
    base = RunConfig()
    flags = tune.trial_flags({"lr": 1e-4, "head_lr_ratio": 10.0, "lora_r": 8, "lora_alpha_ratio": 2, "lora_targets": "qv",
                              "attention": "causal"}, base)
    assert flags == ["--lr", "0.0001", "--head-lr", "0.001", "--lora-r", "8", "--lora-alpha", "16",
                     "--target-modules", "q_proj", "v_proj", "--attention", "causal", "--no-bidirectional"]


@pytest.mark.parametrize("budget,seconds", [("30m", 1800), ("2h", 7200), ("5400s", 5400), ("5400", 5400), ("1h30m", 5400)])
def test_budgets(budget, seconds):
    assert tune.parse_budget(budget) == seconds


@pytest.mark.parametrize("space,where,says", [
    ("lr: {type: float, low: 1e-5, high: 1e-3, log: true}\nbogus: {type: int, low: 1, high: 2}\n", ":2:", "unknown dimension 'bogus'"),
    ("lr:\n  type: float\n  low: 1e-5\n  hight: 1e-3\n", ":4:", "unknown key 'hight'"),
    ("lora_dropout:\n  type: float\n  low: 0.0\n  high: 1.0\n", ":4:", "lora_dropout = 1.0 is refused"),
    ("lr:\n  type: float\n  low: 0\n  high: 1e-3\n  log: true\n", ":3:", "log scale needs low > 0"),
    ("pooling:\n  type: categorical\n  choices: [last, sideways]\n", ":3:", "pooling must be one of"),
    ("epochs: {type: categorical, choices: [1, 2]}\n", ":1:", "--max-steps is set"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_line_before_any_work(tmp_path, tiny_model_dir, tiny_seq_data, capsys,
                                                                          space, where, says):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    out = tmp_path / "tune"
    assert _tune(out, tiny_seq_data, tiny_model_dir, "--budget", "10m", "--space", str(path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}{where}" in err and says in err, err
    assert not out.exists()


@pytest.mark.parametrize("budget", ["30s", "59", "two hours", "1x"])
def test_a_bad_budget_is_one_line_before_any_work(tmp_path, tiny_model_dir, tiny_seq_data, capsys, budget):
    out = tmp_path / "tune"
    assert _tune(out, tiny_seq_data, tiny_model_dir, "--budget", budget) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --budget") and not out.exists(), err


def test_a_tune_needs_an_end_and_resume_needs_a_tune(tmp_path, tiny_model_dir, tiny_seq_data, capsys):
    assert _tune(tmp_path / "a", tiny_seq_data, tiny_model_dir) == 2
    assert "--budget" in capsys.readouterr().err
    assert main(["tune", "--output", str(tmp_path / "b"), "--resume", "--trials", "1"]) == 2
    assert "holds no tune" in capsys.readouterr().err


def test_the_budget_starts_no_trial_that_would_not_fit(tmp_path, tiny_seq_data, monkeypatch):
    """Each fake trial takes 50 s of the budget's clock: with 120 s, a third would not fit (20 s left < 50 s mean)."""
    from lsllm import runs
    from lsllm.files import atomic_write_json

    now = [0.0]
    monkeypatch.setattr(tune, "_now", lambda: now[0])

    def fake_train(cfg, explicit=frozenset(), callbacks=()):
        run = runs.RunDir(Path(cfg.train.output))
        run.root.mkdir(parents=True)
        cfg.save(run.config)
        atomic_write_json(run.metrics, {"validation": {"accuracy": cfg.train.lr}, "test": {"accuracy": 0.5}})
        now[0] += 50.0
        return run.root

    spec = tune.new_spec(["--data", str(tiny_seq_data), "--model", "unused", "--max-steps", "2"])
    lines = []
    result = tune.tune(tmp_path / "tune", spec, budget="2m", trials=10, train=fake_train, progress=lines.append)
    assert [t["state"] for t in result["trials"]] == ["complete", "complete"]
    assert "1m10s left" in lines[0] and "20s left" in lines[1] and "no new trial" in lines[2]
    best = max(result["trials"], key=lambda t: t["validation"])
    assert result["best"]["trial"] == best["number"] and result["best"]["test"] == 0.5  # the largest lr wins here
    assert "--output" not in (tmp_path / "tune" / "best.yaml").read_text() and \
        RunConfig.load(tmp_path / "tune" / "best.yaml").train.output is None
    # --resume continues the saved tune: the same flags in another order are the same tune, others are refused.
    same = tune.new_spec(["--max-steps", "2", "--model", "unused", "--data", str(tiny_seq_data)])
    again = tune.tune(tmp_path / "tune", same, trials=2, resume=True, train=fake_train, progress=lines.append)
    assert len(again["trials"]) == 2 and "holds 2 trial(s) already" in lines[-1]
    other = tune.new_spec(["--data", str(tiny_seq_data), "--model", "unused", "--max-steps", "3"])
    with pytest.raises(ConfigError, match="train flags differ"):
        tune.tune(tmp_path / "tune", other, trials=3, resume=True, train=fake_train)
    with pytest.raises(ConfigError, match="already holds a tune"):
        tune.tune(tmp_path / "tune", same, trials=3, train=fake_train)


def test_a_new_tune_starts_from_the_hand_made_recipe(tmp_path, tiny_model_dir, tiny_seq_data):
    """Trial 0 is the user's flags with --preset lsllm filling the rest (tune.anchor_params); later trials are TPE's."""
    prompt = ["--prompt", "Review: {text}\nSentiment:"]
    spec = tune.new_spec(["--data", str(tiny_seq_data), "--model", str(tiny_model_dir), *TRIAL_FLAGS, *prompt])
    anchor = tune.anchor_params(tune.space_of(spec), spec)
    assert anchor == {"lr": 3e-4, "head_lr_ratio": 1.0, "lora_r": 16, "lora_alpha_ratio": 2, "lora_targets": "qv",
                      "lora_dropout": 0.05, "attention": "causal", "pooling": "last", "head_init": "labels"}
    # The user's own flags win over the preset; without --prompt the seq preset does not apply: the defaults.
    spec = tune.new_spec(["--data", str(tiny_seq_data), "--model", str(tiny_model_dir), *TRIAL_FLAGS, "--lora-r", "8"])
    anchor = tune.anchor_params(tune.space_of(spec), spec)
    assert "lora_r" not in anchor and anchor["lr"] == 2e-4 and anchor["lora_targets"] == "all"
    out = tmp_path / "tune"
    assert _tune(out, tiny_seq_data, tiny_model_dir, *prompt, "--trials", "2") == 0
    first, second = _trials(out)
    assert first["params"]["lr"] == pytest.approx(3e-4) and first["params"]["lora_r"] == 16
    assert first["params"]["lora_targets"] == "qv" and first["params"]["head_init"] == "labels"
    assert second["params"] != first["params"]


def test_a_trials_config_is_the_users_with_its_settings_and_its_flags_record_it():
    """Trials get a config object, not flags re-read: the user's config with `trial_settings` set. Its recorded flags
    (a trial's "flags") given after the user's to `lsllm train` make the same config and the same given settings."""
    from lsllm import flags

    user = ["--data", "x.tsv", "--bidirectional", "--lora-r", "8", "--prompt", "Review: {text}\\nSentiment:", "--no-pack"]
    given = tune.Given.read(user)
    base, _ = given.preset({"task": "seq"})  # the ratios multiply the user's lr and rank (8)
    params = {"lr": 3e-4, "head_lr_ratio": 5.0, "lora_alpha_ratio": 2, "lora_targets": "attention", "attention": "repeat",
              "weight_decay": 0, "pack": True, "lora_dropout": 0.1}
    cfg, explicit = given.trial(tune.trial_settings(params, base))
    assert cfg.model.attention == "repeat" and not cfg.model.bidirectional and cfg.lora.alpha == 16
    assert cfg.train.head_lr == pytest.approx(1.5e-3) and cfg.train.weight_decay == 0.0 and cfg.train.pack
    assert cfg.model.prompt == "Review: {text}\nSentiment:" and cfg.lora.r == 8
    assert given.config.model.bidirectional and given.config.model.attention == "bidirectional"  # the user's, untouched
    again, again_explicit = flags.config_from_flags([*user, *tune.trial_flags(params, base)])
    assert again == cfg and again_explicit == explicit
    with pytest.raises(ConfigError, match="lora dropout must be in"):
        given.trial(tune.trial_settings({"lora_dropout": 1.0}, base))
    with pytest.raises(ValueError):
        tune.trial_settings({"lora_r": "many"}, base)
    with pytest.raises(ConfigError, match="--nope is not a flag"):
        tune.Given.read(["--data", "x.tsv", "--nope"])
