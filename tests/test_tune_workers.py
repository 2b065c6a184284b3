"""`lsllm tune` workers sharing one study on a real PostgreSQL server, as on several machines.

The server is Debian's `postgresql`, started by the session fixture below on a free local port and
torn down after (.ci/run installs the package). Each worker has its own --output folder, as it
would on its own machine; only the database is shared.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml

from lsllm import runs, tune
from lsllm.cli import main
from lsllm.errors import ConfigError
from tests.conftest import free_port

TRIAL_FLAGS = ["--max-steps", "2", "--batch-size", "4", "--dtype", "float32", "--threads", "1"]
PASSWORD = "pw-Zq8v3Tn-never-written"
HEARTBEAT = 1  # seconds: a killed worker's trial is failed after 3 (tune.STALE_HEARTBEATS) of them


def _unavailable(reason: str):
    """Skip where PostgreSQL cannot run here; in CI (CI=true) that is a failure, not a skip."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the PostgreSQL tune tests must run in CI)", pytrace=False)
    pytest.skip(reason)


def _postgres_bin() -> Path | None:
    """The folder of Debian's initdb / pg_ctl (/usr/lib/postgresql/<version>/bin), or pg_config's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    if shutil.which("pg_config"):
        bindir = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
        if (bindir / "initdb").is_file():
            return bindir
    return None


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of our own: a cluster in a temporary folder, TCP on 127.0.0.1 at a free port, a password.

    initdb refuses to run as root, so as root the server runs as the `postgres` user the Debian
    package creates (else `nobody`). Yields the URL of an empty database, password included.
    """
    bindir = _postgres_bin()
    if bindir is None:
        _unavailable("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    try:
        tune.storage_url("postgresql://x@127.0.0.1/x")
    except Exception as err:
        _unavailable(str(err))
    as_user: dict = {}
    root = Path(tempfile.mkdtemp(prefix="lsllm-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = pwd.getpwnam("nobody")
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        os.chown(root, account.pw_uid, account.pw_gid)
    (root / "pw").write_text(PASSWORD + "\n")
    if as_user:
        os.chown(root / "pw", as_user["user"], as_user["group"])

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / command[0]), *command[1:]], capture_output=True, text=True, cwd=root, timeout=120,
                              **as_user)

    data = root / "data"
    started = False
    try:
        made = run("initdb", "-D", str(data), "-U", "lsllm", "--pwfile", str(root / "pw"), "--auth-host", "scram-sha-256",
                   "--auth-local", "trust", "-E", "UTF8", "--no-sync")
        if made.returncode != 0:
            _unavailable(f"initdb failed: {made.stderr.strip()[-300:]}")
        for _ in range(3):  # a free port can be taken between the check and the start: try another
            port = free_port()
            up = run("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                     f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
            if up.returncode == 0:
                started = True
                break
        if not started:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").is_file() else up.stderr
            _unavailable(f"PostgreSQL did not start: {log.strip()[-300:]}")
        made = run("createdb", "-h", str(root), "-p", str(port), "-U", "lsllm", "tunes")
        assert made.returncode == 0, made.stderr
        yield f"postgresql://lsllm:{PASSWORD}@127.0.0.1:{port}/tunes"
    finally:
        if started:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=tune.storage_url(url))


# A worker whose n-th trial holds at its first training step (HOLD_AT_TRIAL), after writing the trial's
# folder to HOLD_MARKER, until HOLD_UNTIL exists (never, without it: the test kills it there).
HOLDING_WORKER = r"""
import os, sys, time
from pathlib import Path
from transformers import TrainerCallback
from lsllm import training
from lsllm.cli import main
from lsllm.errors import ConfigError

hold_at, marker, until = int(os.environ["HOLD_AT_TRIAL"]), Path(os.environ["HOLD_MARKER"]), os.environ.get("HOLD_UNTIL")
original, seen = training.train, []


class Hold(TrainerCallback):
    def __init__(self, folder):
        self.folder = folder

    def on_step_end(self, args, state, control, **kwargs):
        marker.write_text(self.folder)
        while until is None or not Path(until).exists():
            time.sleep(0.1)


def train(cfg, explicit=frozenset(), callbacks=()):
    seen.append(cfg.train.output)
    held = [Hold(str(cfg.train.output))] if len(seen) == hold_at else []
    return original(cfg, explicit, [*callbacks, *held])


training.train = train
sys.exit(main(sys.argv[1:]))
"""


def _wait_for(paths: list[Path], workers: list[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not all(p.exists() for p in paths):
        for worker in workers:
            if worker.poll() is not None:
                out, err = worker.communicate()
                pytest.fail(f"a worker ended (exit {worker.returncode}) before holding its trial:\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"the workers did not reach their held trials within {seconds:g} s"
        time.sleep(0.2)


def test_two_workers_share_a_postgres_study_and_a_killed_workers_trial_is_failed(postgres, tmp_path, tiny_model_dir,
                                                                                    tiny_seq_data):
    """Two workers on one study, each with its own folder; one is killed (-9) in its second trial.

    Worker A holds in its second trial and is killed there; worker B holds in its second trial
    until A has been dead for longer than 3 heartbeats, then goes on. B fails A's trial (heartbeat)
    when it starts its next one, and the study ends at --trials 5 with that failed trial counted.
    """
    trials, name = 5, "two-workers"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LSLLM_PROGRESS": "0", "HOLD_AT_TRIAL": "2"}
    command = [sys.executable, "-c", HOLDING_WORKER, "tune", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir),
               "--trials", str(trials), "--pruner", "none", "--storage", postgres, "--study-name", name, "--resume",
               "--heartbeat", str(HEARTBEAT), *TRIAL_FLAGS]
    a, b, go = tmp_path / "a", tmp_path / "b", tmp_path / "go"
    worker_a = subprocess.Popen([*command, "--output", str(a)], env={**env, "HOLD_MARKER": str(tmp_path / "a-held")},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker_b = subprocess.Popen([*command, "--output", str(b)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**env, "HOLD_MARKER": str(tmp_path / "b-held"), "HOLD_UNTIL": str(go)})
    try:
        _wait_for([tmp_path / "a-held", tmp_path / "b-held"], [worker_a, worker_b], 400)
        worker_a.send_signal(signal.SIGKILL)  # mid-trial: no Python handler runs, the trial stays "running"
        a_out, a_err = worker_a.communicate(timeout=60)
        killed_folder = Path((tmp_path / "a-held").read_text())
        time.sleep(tune.STALE_HEARTBEATS * HEARTBEAT + 1.5)  # A's trial is now stale
        go.touch()
        b_out, b_err = worker_b.communicate(timeout=400)
    finally:
        for worker in (worker_a, worker_b):
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    assert worker_a.returncode == -signal.SIGKILL
    assert worker_b.returncode == 0, b_err[-3000:]

    study = _study(postgres, name)
    every = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    # --trials is not overshot: five trials, the killed one among them, none given back (only B ran at the end).
    assert [t.number for t in every] == list(range(trials))
    states = {t.number: t.state for t in every}
    (failed,) = [t for t in every if t.state == optuna.trial.TrialState.FAIL]
    assert sorted(s.name for s in states.values()) == ["COMPLETE"] * 4 + ["FAIL"]
    # The failed trial is the one A was killed in, failed by B's heartbeat check, and B ran a trial after it.
    assert failed.user_attrs["run"] == killed_folder.name and Path(failed.user_attrs["output"]) == a.resolve()
    assert failed.user_attrs["worker"].endswith(f":{worker_a.pid}") and "error" not in failed.user_attrs
    assert any(t.datetime_start > failed.datetime_complete for t in every if t.user_attrs["worker"].endswith(f":{worker_b.pid}"))
    assert "no heartbeat" in b_err and killed_folder.name in b_err
    assert json.loads((killed_folder / tune.TRIAL_MARK).read_text())["state"] == "failed"  # its folder is here: marked

    # No trial ran twice: each trial's run folder exists once, in the folder of the worker that drew it.
    for t in every:
        mine, other = (a, b) if t.user_attrs["worker"].endswith(f":{worker_a.pid}") else (b, a)
        assert (mine / t.user_attrs["run"]).is_dir() and not (other / t.user_attrs["run"]).exists()
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert (mine / t.user_attrs["run"] / "run.json").is_file()
    assert sorted(p.name for p in [*a.glob("trial-*"), *b.glob("trial-*")]) == [tune.trial_name(n) for n in range(trials)]
    assert {w.split(":")[1] for w in (t.user_attrs["worker"] for t in every)} == {str(worker_a.pid), str(worker_b.pid)}
    # Trial 0 is the hand-made recipe, queued once by the worker that created the study.
    anchor = tune.anchor_params(tune.space_of(study.user_attrs["lsllm_spec"]), study.user_attrs["lsllm_spec"])
    assert every[0].params == pytest.approx(anchor) and all(t.params != every[0].params for t in every[1:])
    assert sum("fixed_params" in t.system_attrs for t in every) == 1

    # B's tune.json is the whole study's; best.yaml is the study's best trial, whichever worker ran it.
    result = json.loads((b / "tune.json").read_text())
    assert [(t["number"], t["state"]) for t in result["trials"]] == [(n, tune.STATES[states[n].name]) for n in range(trials)]
    assert next(t for t in result["trials"] if t["state"] == "failed")["error"] == tune.STALE_ERROR
    best = max((t for t in every if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: (t.value, -t.number))
    assert result["best"]["trial"] == best.number and result["best"]["validation"] == best.value
    best_folder = Path(best.user_attrs["output"]) / best.user_attrs["run"]
    own = yaml.safe_load((best_folder / runs.CONFIG).read_text())
    own["train"].update(output=None, resume=False)
    assert yaml.safe_load((b / "best.yaml").read_text()) == own
    assert result["best"]["test"] == json.loads((best_folder / runs.METRICS).read_text())["test"]["accuracy"]

    # The password is in no file either worker wrote (run.json's command line included) and on no output.
    assert result["storage"].startswith("postgresql://lsllm:***@")
    assert json.loads(next(b.glob("trial-*/run.json")).read_text())["command"]  # the command line is recorded...
    for path in [*a.rglob("*"), *b.rglob("*")]:
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path  # ...without the password
    assert not any(PASSWORD in text for text in (a_out, a_err, b_out, b_err))


def test_workers_drawing_at_once_never_run_more_than_trials(postgres, tmp_path, tiny_seq_data, monkeypatch):
    """Three workers (threads, each its own study object and folder) start their trials in lock-step.

    With --trials 7, the 7th trial is drawn by up to three workers at once (numbers 6, 7, 8): the one
    numbered 6 runs, the others are given back unrun, so 7 trials run and none twice. How many draw
    past 6 depends on timing (a worker whose previous trial ends after another has drawn 7 sees the
    study full and stops without drawing), so 0 to 2 trials are given back, always the highest numbers.
    """
    monkeypatch.setattr(tune, "write_plots", lambda output, study: [])  # matplotlib is not thread-safe
    monkeypatch.setattr(tune, "write_report", lambda folders: None)
    lock_step = threading.Barrier(3, timeout=120)  # every trial starts with one of each worker's
    ran, lock = [], threading.Lock()

    def fake_train(cfg, explicit=frozenset(), callbacks=()):
        try:
            lock_step.wait()
        except threading.BrokenBarrierError:  # the last trial: the other workers gave theirs back and left
            pass
        run = runs.RunDir(Path(cfg.train.output))
        run.root.mkdir(parents=True)
        cfg.save(run.config)
        from lsllm.files import atomic_write_json

        atomic_write_json(run.metrics, {"validation": {"accuracy": cfg.train.lr}, "test": {"accuracy": 0.5}})
        with lock:
            ran.append(run.root)
        return run.root

    spec = tune.new_spec(["--data", str(tiny_seq_data), "--model", "unused", "--max-steps", "2"])
    results, errors = {}, []

    def worker(i: int) -> None:
        try:
            results[i] = tune.tune(tmp_path / f"w{i}", spec, trials=7, storage=postgres, study_name="lock-step", resume=True,
                                   train=fake_train)
        except BaseException as err:  # noqa: B036 (reported below)
            errors.append(err)
        finally:
            lock_step.abort()  # a worker that is done lets the one left start its last trial alone

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert len(ran) == 7 and len({p.name for p in ran}) == 7
    study = _study(postgres, "lock-step")
    every = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    given_back = [t.number for t in every if tune.GIVEN_BACK in t.user_attrs]
    assert [t.number for t in every] == list(range(len(every))) and 7 <= len(every) <= 9
    assert given_back == list(range(7, len(every)))  # every trial drawn past the 7th, and no other
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in every if t.number < 7)
    assert sum("fixed_params" in t.system_attrs for t in every) == 1 and every[0].params == pytest.approx(
        tune.anchor_params(tune.space_of(spec), spec))  # one worker created the study and queued the recipe, once
    for result in results.values():  # each worker's tune.json lists the whole study, the given-back trials left out
        assert [t["number"] for t in result["trials"]] == list(range(7)) and result["counts"].get("given_back", 0) == len(given_back)
    assert not any((tmp_path / f"w{i}" / tune.trial_name(n)).exists() for i in range(3) for n in (7, 8))


def test_a_wrong_password_is_one_line_without_it(postgres, tmp_path, tiny_seq_data, capsys):
    wrong = postgres.replace(PASSWORD, "not-the-password-42")
    assert main(["tune", "--data", str(tiny_seq_data), "--model", "unused", "--trials", "1", "--output", str(tmp_path / "t"),
                 "--storage", wrong]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot connect" in err and "password authentication failed" in err, err
    assert "not-the-password-42" not in err and "lsllm:***@127.0.0.1" in err


@pytest.mark.parametrize("url,says", [
    ("nonsense", "not a database URL"),
    ("mysql://me:s3cret-x@127.0.0.1/db", "driver is not installed"),
    ("postgresql://me:s3cret-x@127.0.0.1:{port}/db", "cannot connect"),
])
def test_a_bad_storage_is_one_line_and_exit_2(tmp_path, tiny_seq_data, capsys, url, says):
    """A bad URL, a driver that is not installed, a server that is not there: one line, no password, nothing done."""
    if "mysql" in url:
        if any(_importable(m) for m in ("MySQLdb", "pymysql")):
            pytest.skip("a MySQL driver is installed here")
    url = url.format(port=free_port())
    out = tmp_path / "t"
    assert main(["tune", "--data", str(tiny_seq_data), "--model", "unused", "--trials", "1", "--output", str(out),
                 "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --storage") and says in err, err
    assert "s3cret-x" not in err and not list(out.glob("trial-*"))


def test_no_postgres_driver_says_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ConfigError, match=r"postgresql://me:\*\*\*@db/x: PostgreSQL needs its driver: pip install "
                                               r"'lsllm\[postgres\]'"):
        tune.open_storage("postgresql://me:pw@db/x")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_the_password_can_come_from_pgpassword_instead_of_the_url(postgres, monkeypatch):
    """What docs/tune.md advises: the URL without a password, libpq reads PGPASSWORD (or ~/.pgpass)."""
    bare = postgres.replace(f":{PASSWORD}@", "@")
    with pytest.raises(ConfigError, match="cannot connect"):
        tune.open_storage(bare)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    storage = tune.open_storage(bare)
    assert "pgpassword-check" not in optuna.study.get_all_study_names(storage)
