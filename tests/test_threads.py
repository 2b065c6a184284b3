"""--threads and the oversubscription warning (load average above the core count), with a mocked load."""

from __future__ import annotations

import logging

import pytest
import torch

from lsllm import hardware
from lsllm.cli import main
from lsllm.errors import ConfigError, LsllmError


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose load average the test sets; the warn-once flag starts cleared."""
    state = {"load": 0.5}

    def getloadavg():
        if state["load"] is None:
            raise OSError("no load average here")
        return (state["load"], state["load"], state["load"])

    monkeypatch.setattr(hardware.os, "getloadavg", getloadavg)
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hardware, "_oversubscription_warned", False)
    return state


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lsllm.hardware" and r.levelno == logging.WARNING]


def test_a_load_above_the_cores_warns_once_naming_threads(machine, caplog, keep_threads):
    machine["load"] = 3.5
    torch.set_num_threads(2)
    assert hardware.warn_if_oversubscribed()
    assert not hardware.warn_if_oversubscribed()  # once per process
    [message] = warnings_of(caplog)
    assert "3.5 on 2 CPU cores" in message and "--threads" in message


@pytest.mark.parametrize("load", [0.0, 1.9, 2.0, None])
def test_a_load_within_the_cores_or_unknown_is_quiet(machine, caplog, load):
    machine["load"] = load
    assert not hardware.warn_if_oversubscribed()
    assert warnings_of(caplog) == []


def test_one_thread_is_not_warned_about(machine, caplog, keep_threads):
    """With one torch thread (OMP_NUM_THREADS=1) there is no thread to wait for, and --threads 1 is no advice."""
    machine["load"] = 9.0
    torch.set_num_threads(1)
    assert not hardware.warn_if_oversubscribed()
    assert warnings_of(caplog) == []


def test_explicit_threads_are_applied_and_silence_the_warning(machine, caplog, keep_threads):
    machine["load"] = 9.0
    hardware.configure_threads(1)
    assert torch.get_num_threads() == 1
    assert warnings_of(caplog) == []
    with pytest.raises(ConfigError, match="--threads must be >= 1"):
        hardware.configure_threads(0)


@pytest.mark.parametrize("argv", [["predict", "no-such-run", "a text", "--threads", "0"],
                                  ["eval", "no-such-run", "--threads", "0"],
                                  ["train", "--threads", "0"]])
def test_cli_refuses_zero_threads_in_one_line(argv, capsys):
    assert main(argv) == 2
    assert "--threads must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["ls", "sft"])
def test_the_run_sequence_applies_threads_from_python_too(method, machine, keep_threads, tmp_path):
    """`threads` belongs to the run: `training.train(cfg)` / `train_sft(cfg)` (and so `lsllm study`) apply it first."""
    from lsllm.config import DataConfig, TrainConfig

    torch.set_num_threads(2)
    data = DataConfig(data=str(tmp_path / "no-such-file.tsv"))
    if method == "ls":
        from lsllm.config import RunConfig
        from lsllm.training import train

        cfg, run = RunConfig(data=data, train=TrainConfig(threads=1, output=str(tmp_path / "run"))), train
    else:
        from lsllm.sft.config import SFTRunConfig
        from lsllm.sft.training import train_sft

        cfg, run = SFTRunConfig(data=data, train=TrainConfig(threads=1, output=str(tmp_path / "run"))), train_sft
    with pytest.raises(LsllmError):  # the data does not exist: refused after the threads were set
        run(cfg)
    assert torch.get_num_threads() == 1


def test_cli_warns_on_a_busy_machine_when_no_threads_are_given(machine, caplog, capsys, keep_threads):
    machine["load"] = 4.0
    torch.set_num_threads(2)
    assert main(["predict", "no-such-run", "a text"]) == 2
    [message] = warnings_of(caplog)
    assert "--threads" in message


def test_threads_are_a_train_config_field():
    from lsllm.config import TrainConfig

    assert TrainConfig(threads=2).threads == 2
    with pytest.raises(ConfigError, match="--threads"):
        TrainConfig(threads=0)
