"""`lsllm predict --input` at scale: chunks in input order, --resume after a kill, --shard, Parquet, progress.

Tiny trained runs (conftest `seq_run`, `token_run`); the numbers are the run's, the point is that
streaming, resuming and sharding give the records one uninterrupted process gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsllm import batch_predict
from lsllm.cli import main
from lsllm.data import read_predict_inputs
from lsllm.data.inputs import iter_predict_inputs
from lsllm.errors import DataError
from lsllm.progress import Meter
from tests.conftest import NEGATIVE, POSITIVE

WORDS = POSITIVE + NEGATIVE


def texts(n: int) -> list[str]:
    """n texts of lengths from 1 to 10 phrases, in an order where lengths jump about (so sorting moves them)."""
    return [" , ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + (i * 5) % 10)) + f" #{i}" for i in range(n)]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def predict(*argv: str) -> int:
    return main(["predict", *map(str, argv)])


def error_line(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def inputs(tmp_path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("\n".join(texts(23)) + "\n")
    return path


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("LSLLM_PROGRESS", "0")


_OPENED: dict = {}


@pytest.fixture(autouse=True)
def load_once(monkeypatch):
    """Each run is loaded once for the module (with the flags' defaults): most of a tiny predict's time is the load."""
    import dataclasses

    import lsllm.inference.backends
    from lsllm.inference.settings import InferenceSettings

    real = lsllm.inference.backends.open_classifier

    def cached(path, settings=None, **flags):
        settings = settings or InferenceSettings(**flags)
        if dataclasses.replace(settings, threads=None) != InferenceSettings():
            return real(path, settings)
        if str(path) not in _OPENED:
            _OPENED[str(path)] = real(path)
        return _OPENED[str(path)]

    monkeypatch.setattr(lsllm.inference.backends, "open_classifier", cached)


def close(a: list[dict], b: list[dict]) -> None:
    """The same records in the same order; probabilities equal to 1e-5 (other chunks batch them differently)."""
    assert [r["text"] for r in a] == [r["text"] for r in b]
    assert [r["label"] for r in a] == [r["label"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-5)


# ---------------------------------------------------------------- order and identity


def test_streamed_records_are_todays_records_in_input_order(seq_run, inputs, tmp_path, capsys):
    from lsllm.pipeline import load_run

    classifier, _ = load_run(seq_run)
    today = classifier.predict_texts(texts(23))  # every input at once, as predict did before it streamed
    capsys.readouterr()
    assert predict(seq_run, "--input", inputs) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out == today  # one chunk: the same batches, the same numbers
    assert predict(seq_run, "--input", inputs, "--output-file", tmp_path / "a.jsonl") == 0
    assert lines(tmp_path / "a.jsonl") == today
    assert predict(seq_run, "--input", inputs, "--output-file", tmp_path / "b.jsonl", "--chunk-size", "4") == 0
    chunked = lines(tmp_path / "b.jsonl")
    assert [r["text"] for r in chunked] == texts(23)  # sorted by length inside each chunk, written in input order
    close(chunked, today)


def test_token_runs_stream_texts_and_token_lists_in_input_order(token_run, tmp_path, capsys):
    path = tmp_path / "mixed.jsonl"
    given = [{"text": "EU rejects German call"}, {"tokens": ["Peter", "Blackburn"]}, {"text": "BRUSSELS 1996-08-22"},
             {"tokens": ["The", "European", "Commission", "said"]}, {"text": "to boycott British lamb ."}]
    path.write_text("".join(json.dumps(g) + "\n" for g in given))
    assert predict(token_run, "--input", path, "--output-file", tmp_path / "out.jsonl", "--chunk-size", "2") == 0
    out = lines(tmp_path / "out.jsonl")
    assert [r["text"] for r in out] == [g.get("text") or " ".join(g["tokens"]) for g in given]
    assert all(len(r["tags"]) == len(r["tokens"]) for r in out)


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("cut", ["torn-line", "chunk-boundary", "empty", "all-but-a-torn-last"])
def test_resume_after_a_cut_gives_exactly_the_uninterrupted_lines(seq_run, inputs, tmp_path, cut, capsys):
    full = tmp_path / "full.jsonl"
    assert predict(seq_run, "--input", inputs, "--output-file", full, "--chunk-size", "5") == 0
    whole = full.read_bytes()
    ends = [i + 1 for i, byte in enumerate(whole) if byte == ord("\n")]
    at = {"torn-line": ends[12] - 7, "chunk-boundary": ends[9], "empty": 0, "all-but-a-torn-last": len(whole) - 3}[cut]
    killed = tmp_path / "killed.jsonl"
    killed.write_bytes(whole[:at])
    (tmp_path / ("killed.jsonl" + batch_predict.SIDECAR_SUFFIX)).write_bytes(
        (tmp_path / ("full.jsonl" + batch_predict.SIDECAR_SUFFIX)).read_bytes())
    capsys.readouterr()
    assert predict(seq_run, "--input", inputs, "--output-file", killed, "--resume") == 0
    assert killed.read_bytes() == whole
    kept = {"torn-line": 10, "chunk-boundary": 10, "empty": 0, "all-but-a-torn-last": 20}[cut]
    assert (f"; {kept} of them were there from before" in capsys.readouterr().err) == (kept > 0)
    sidecar = json.loads((tmp_path / ("killed.jsonl" + batch_predict.SIDECAR_SUFFIX)).read_text())
    assert sidecar["complete"] and sidecar["records"] == 23


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet"])
def test_resume_after_a_stop_mid_run_continues_jsonl_and_parquet(seq_run, inputs, tmp_path, monkeypatch, name):
    full = tmp_path / f"full-{name}"
    assert predict(seq_run, "--input", inputs, "--output-file", full, "--chunk-size", "5") == 0
    calls = []
    original = batch_predict.predict_chunk

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a stop after two chunks were written
        return original(*args, **kwargs)

    monkeypatch.setattr(batch_predict, "predict_chunk", failing)
    out = tmp_path / name
    assert predict(seq_run, "--input", inputs, "--output-file", out, "--chunk-size", "5") == 130
    monkeypatch.setattr(batch_predict, "predict_chunk", original)
    if name.endswith(".parquet"):
        assert not out.exists() and len(list((tmp_path / f"{name}.parts").glob("part-*.parquet"))) == 2
        (tmp_path / f"{name}.parts" / ".part-000002.parquet.tmp").write_bytes(b"PAR1 half a part")
    else:
        assert len(lines(out)) == 10
    assert predict(seq_run, "--input", inputs, "--output-file", out, "--resume") == 0
    assert read_records(out) == read_records(full)
    assert not (tmp_path / f"{name}.parts").exists()


def read_records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return lines(path)


def test_a_kill_9_mid_run_then_resume_gives_exactly_the_uninterrupted_lines(seq_run, tmp_path):
    """A real `kill -9` of `lsllm predict` while it writes, then --resume: byte for byte the uninterrupted file.

    The killed process is a subprocess on one thread; the resumed and the uninterrupted runs are
    in this process, on one thread too (the same batches on the same kernels give the same bits).
    """
    import torch

    n = 6000
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts(n)) + "\n")
    killed = tmp_path / "killed.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LSLLM_PROGRESS": "0"}
    process = subprocess.Popen([sys.executable, "-m", "lsllm", "predict", str(seq_run), "--input", str(source),
                                "--chunk-size", "100", "--threads", "1", "--output-file", str(killed)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not (killed.is_file() and killed.stat().st_size > 0):  # wait for the first chunk
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no record written within 600 s"
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    left = killed.read_bytes().count(b"\n")
    assert 0 < left < n, f"the kill came after {left} of {n} records: make the input longer"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert predict(seq_run, "--input", source, "--output-file", killed, "--resume") == 0
        full = tmp_path / "full.jsonl"
        assert predict(seq_run, "--input", source, "--output-file", full, "--chunk-size", "100") == 0
    finally:
        torch.set_num_threads(threads)
    assert killed.read_bytes() == full.read_bytes()


# ---------------------------------------------------------------- shards


def test_shards_partition_the_input_and_concatenate_to_the_whole(seq_run, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    for k in range(3):
        assert predict(seq_run, "--input", inputs, "--output-file", out, "--shard", f"{k}/3") == 0
    names = sorted(p.name for p in tmp_path.glob("out-*-of-00003.jsonl"))
    assert names == ["out-00000-of-00003.jsonl", "out-00001-of-00003.jsonl", "out-00002-of-00003.jsonl"]
    parts = [lines(tmp_path / name) for name in names]
    assert [len(p) for p in parts] == [7, 8, 8]  # 23 inputs: blocks [0, 7), [7, 15), [15, 23)
    assert predict(seq_run, "--input", inputs, "--output-file", tmp_path / "whole.jsonl") == 0
    close([r for part in parts for r in part], lines(tmp_path / "whole.jsonl"))
    # under torchrun each rank takes its shard without the flag
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    assert predict(seq_run, "--input", inputs, "--output-file", tmp_path / "ranked.jsonl") == 0
    assert lines(tmp_path / "ranked-00001-of-00003.jsonl") == parts[1]


def test_more_shards_than_inputs_leave_empty_shards(seq_run, tmp_path):
    source = tmp_path / "two.txt"
    source.write_text("a great movie\nboring and flat\n")
    for k in range(3):
        assert predict(seq_run, "--input", source, "--output-file", tmp_path / "o.jsonl", "--shard", f"{k}/3") == 0
    assert [len(lines(tmp_path / f"o-0000{k}-of-00003.jsonl")) for k in range(3)] == [0, 1, 1]


def test_shard_rule():
    assert [batch_predict.Shard(k, 4).block(10) for k in range(4)] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert batch_predict.resolve_shard(None, {"WORLD_SIZE": "2", "RANK": "1"}) == batch_predict.Shard(1, 2)
    assert batch_predict.resolve_shard(None, {"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert batch_predict.resolve_shard("0/1", {}) is None


# ---------------------------------------------------------------- parquet


def test_parquet_in_and_out_round_trip(seq_run, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    given = texts(23)
    pq.write_table(pa.table({"id": list(range(23)), "text": given}), tmp_path / "in.parquet", row_group_size=6)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in given))
    assert predict(seq_run, "--input", tmp_path / "in.parquet", "--output-file", tmp_path / "out.parquet", "--chunk-size", "5") == 0
    assert predict(seq_run, "--input", tmp_path / "in.jsonl", "--output-file", tmp_path / "out.jsonl", "--chunk-size", "5") == 0
    parquet = pq.ParquetFile(tmp_path / "out.parquet")
    assert parquet.metadata.num_row_groups == 5  # one per chunk
    assert parquet.read().to_pylist() == lines(tmp_path / "out.jsonl")
    # a shard of a Parquet input skips the row groups before its block unread, and reads the rest from its row
    assert predict(seq_run, "--input", tmp_path / "in.parquet", "--output-file", tmp_path / "s.parquet", "--shard", "1/2") == 0
    assert [r["text"] for r in read_records(tmp_path / "s-00001-of-00002.parquet")] == given[11:]


@pytest.mark.parametrize("problem", ["single-label", "multi-label", "regression", "pairs", "token"])
def test_parquet_records_of_every_problem_type_read_back_as_written(tmp_path, problem):
    """Records made by the problem types themselves, written as Parquet in two chunks, read back equal."""
    import torch

    from lsllm.data import SeqExample, TokenExample
    from lsllm.inference.prediction import seq_records, split_words, token_records
    from lsllm.problems import family, make_problem
    from lsllm.record_files import open_records, record_schema

    labels = ["joy", "anger", "fear"] if problem != "token" else ["O", "B-PER", "I-PER", "B-LOC"]
    if problem == "token":
        texts = ["Peter Blackburn in Brussels", "nothing here"]
        words = [[(1, 0.9), (2, 0.8), (0, 0.7), (3, 0.6)], [(0, 0.5), (0, 0.5)]]
        spans = [split_words(t)[1] for t in texts]
        records = token_records([TokenExample(split_words(t)[0]) for t in texts], words, labels, texts, spans)
        records += token_records([TokenExample(["EU", "rejects"])], [[(3, 0.9), (0, 0.4)]], labels)  # given as tokens
    else:
        fields = ["premise", "hypothesis"] if problem == "pairs" else None
        examples = [SeqExample(f"text {i}", fields={"premise": f"p{i}", "hypothesis": f"h{i}"} if fields else None)
                    for i in range(3)]
        kind = "single-label" if problem == "pairs" else problem
        outputs = [torch.tensor([0.7, 0.2, 0.6]), torch.tensor([0.1, 0.1, 0.1]), torch.tensor([0.2, 0.9, 0.3])]
        if kind == "regression":
            outputs = [o[:1] * 5 for o in outputs]
        records = seq_records(examples, outputs, labels if kind != "regression" else ["score"], make_problem(kind))
    schema = record_schema(family("token" if problem == "token" else "seq", "single-label" if problem == "pairs" else problem),
                           labels if problem != "regression" else ["score"], ["premise", "hypothesis"] if problem == "pairs" else None)
    out = open_records(tmp_path / "r.parquet", schema)
    out.append(records[:2])
    out.append(records[2:])
    out.finish()
    back = read_records(tmp_path / "r.parquet")
    if problem == "token":  # entities of inputs given as tokens have no character offsets: null in Parquet
        for record in back[2:]:
            for entity in record["entities"]:
                assert entity.pop("char_start") is None and entity.pop("char_end") is None
    assert back == records


def test_parquet_inputs_name_their_row_and_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["fine", None, "x"]}), tmp_path / "null.parquet")
    with pytest.raises(DataError, match=r"null\.parquet row 2: no text in column 'text'"):
        read_predict_inputs(tmp_path / "null.parquet")
    pq.write_table(pa.table({"review": ["fine"]}), tmp_path / "col.parquet")
    with pytest.raises(DataError, match=r"col\.parquet: no text column .*columns present: review"):
        read_predict_inputs(tmp_path / "col.parquet")
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "int.parquet")
    with pytest.raises(DataError, match=r"int\.parquet: column 'text' holds int64, not text"):
        read_predict_inputs(tmp_path / "int.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable Parquet file"):
        read_predict_inputs(tmp_path / "bad.parquet")
    pq.write_table(pa.table({"premise": ["a"], "hypothesis": ["b"]}), tmp_path / "pair.parquet")
    assert read_predict_inputs(tmp_path / "pair.parquet", fields=["premise", "hypothesis"])[0].fields == {"premise": "a", "hypothesis": "b"}
    pq.write_table(pa.table({"tokens": [["EU", "rejects"]]}), tmp_path / "tok.parquet")
    assert read_predict_inputs(tmp_path / "tok.parquet")[0].tokens == ["EU", "rejects"]


# ---------------------------------------------------------------- readers stream


@pytest.mark.parametrize(("name", "content"), [
    ("s.txt", "one\ntwo\n" + "x\udc80y\n"),
    ("s.jsonl", '{"text": "one"}\n{"text": "two"}\n{"text": 3}\n'),
    ("s.csv", "text,label\none,a\ntwo,b\n ,c\n"),
    ("s.tsv", "text\tlabel\none\ta\ntwo\tb\n \tc\n"),
    ("s.conll", "one O\n\ntwo O\n\nthree O x\n"),
])  # fmt: skip
def test_readers_hand_out_inputs_before_reading_the_rest(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    stream = iter_predict_inputs(path)
    first = [getattr(example, "text", None) or example.tokens[0] for _, example in (next(stream), next(stream))]
    assert first == ["one", "two"]
    with pytest.raises(DataError) as err:
        next(stream)
    line = {".txt": 3, ".jsonl": 3, ".csv": 4, ".tsv": 4, ".conll": 5}[path.suffix]
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_skip_leaves_out_the_first_inputs(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts(9)))
    assert [e.text for _, e in iter_predict_inputs(path, skip=4)] == texts(9)[4:]
    assert list(iter_predict_inputs(path, skip=9)) == []


# ---------------------------------------------------------------- refusals


def test_refusals_are_one_line(seq_run, token_run, inputs, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert predict(seq_run, "--input", inputs, "--output-file", out, "--chunk-size", "5") == 0
    before = out.read_bytes()
    capsys.readouterr()
    cases = [
        ([seq_run, "--input", inputs, "--output-file", out], "exists: pass --resume to continue it"),
        ([seq_run, "--input", inputs, "--output-file", tmp_path / "none.jsonl", "--resume"], "holds no predictions to continue"),
        ([token_run, "--input", inputs, "--output-file", out, "--resume"], "was made by another run"),
        ([seq_run, "--input", inputs, "--output-file", out, "--resume", "--chunk-size", "7"], "was made with --chunk-size 5"),
        ([seq_run, "--input", inputs, "--output-file", out, "--resume", "--dtype", "bfloat16"], "was made with torch float32"),
        ([seq_run, "--input", inputs, "--resume"], "--resume writes to a file: give --output-file"),
        ([seq_run, "--input", inputs, "--shard", "1/2"], "--shard 1/2 writes to a file"),
        ([seq_run, "--input", inputs, "--output-file", out, "--shard", "2/2"], "--shard 2/2: write K/N with 0 <= K < N"),
        ([seq_run, "--input", inputs, "--output-file", out, "--shard", "x"], "--shard x: write K/N"),
        ([seq_run, "a great movie", "--output-file", out, "--resume"], "--resume applies to --input FILE"),
        ([seq_run, "a great movie", "--output-file", out], f"--output-file {out} exists"),
        ([seq_run, "a great movie", "--input", inputs, "--output-file", tmp_path / "n.jsonl"], "go to stdout together"),
        ([seq_run, "--input", inputs, "--output-file", tmp_path / "c.jsonl", "--chunk-size", "0"], "--chunk-size 0"),
    ]
    for argv, message in cases:
        line = error_line(capsys, predict(*argv))
        assert message in line, (argv, line)
    other = tmp_path / "other.txt"
    other.write_text("\n".join(texts(24)) + "\n")
    assert message_of(capsys, predict(seq_run, "--input", other, "--output-file", out, "--resume")).startswith(
        f"error: --resume: {out} was made from another input")
    (tmp_path / "alone.jsonl").write_text('{"text": "x"}\n')
    assert "has no alone.jsonl.lsllm-predict.json" in message_of(
        capsys, predict(seq_run, "--input", inputs, "--output-file", tmp_path / "alone.jsonl", "--resume"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WORLD_SIZE", "2")
        env.setenv("RANK", "0")
        assert "contradicts torchrun's RANK=0 WORLD_SIZE=2" in message_of(
            capsys, predict(seq_run, "--input", inputs, "--output-file", out, "--shard", "1/2"))
    shard = tmp_path / "sh.jsonl"
    assert predict(seq_run, "--input", inputs, "--output-file", shard, "--shard", "0/2") == 0
    capsys.readouterr()
    (tmp_path / "sh-00001-of-00002.jsonl.lsllm-predict.json").write_bytes(
        (tmp_path / "sh-00000-of-00002.jsonl.lsllm-predict.json").read_bytes())
    (tmp_path / "sh-00001-of-00002.jsonl").write_text("")
    assert "was made with shard 0/2, this process is shard 1/2" in message_of(
        capsys, predict(seq_run, "--input", inputs, "--output-file", shard, "--shard", "1/2", "--resume"))
    assert out.read_bytes() == before  # nothing refused touched the output


def message_of(capsys, code: int) -> str:
    return error_line(capsys, code)


def test_a_token_input_for_a_sequence_run_is_refused_before_the_model_loads(seq_run, tmp_path, capsys, monkeypatch):
    import lsllm.inference.backends

    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "fine"}\n{"tokens": ["EU", "rejects"]}\n')
    monkeypatch.setattr(lsllm.inference.backends, "open_classifier", lambda *a, **k: pytest.fail("the model was loaded"))
    assert "token inputs (CoNLL, or JSONL with \"tokens\") for a sequence classifier" in error_line(
        capsys, predict(seq_run, "--input", path))


# ---------------------------------------------------------------- progress


def test_meter_writes_a_line_a_minute_in_a_log_and_nothing_when_quiet(monkeypatch, capsys):
    monkeypatch.delenv("LSLLM_PROGRESS")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    meter = Meter("predicting", 1000, initial=200, every=0)
    meter.update(300)
    meter.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("predicting: 500 of 1,000 inputs (50.0 %), ") and err[0].endswith(" left")
    assert err[1].startswith("predicting: 300 inputs in ")
    quiet = Meter("predicting", 1000, every=3600)
    quiet.update(10)  # within the minute: no line yet
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("LSLLM_PROGRESS", "0")
    off = Meter("predicting", 1000, every=0)
    off.update(1000)
    off.close()
    assert capsys.readouterr().err == ""


def test_the_meter_moves_with_the_batches_of_either_backend():
    """PyTorch hands out packed Batch objects, ONNX Runtime lists of feature indices: both move the meter."""
    from lsllm.inference.prediction import Batch

    class Counting:
        moved: list[int] = []

        def update(self, n):
            self.moved.append(n)

    for batches in ([[0, 1], [2], [3, 4, 5]], [Batch([0, 1], {}), Batch([2, 3, 4, 5], {})]):
        meter = Counting()
        meter.moved = []
        seen = list(batch_predict._advancing(meter, 6)(batches))
        assert seen == batches and sum(meter.moved) == 6 and all(n >= 0 for n in meter.moved)


def test_predict_logs_its_progress_when_stderr_is_not_a_terminal(seq_run, inputs, tmp_path, monkeypatch, capsys):
    import lsllm.progress

    monkeypatch.delenv("LSLLM_PROGRESS")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr(lsllm.progress, "LOG_EVERY", 0.0)
    assert predict(seq_run, "--input", inputs, "--output-file", tmp_path / "o.jsonl", "--chunk-size", "10") == 0
    err = capsys.readouterr().err
    assert "predicting: 23 of 23 inputs (100.0 %)" in err and "predicting: 23 inputs in " in err
