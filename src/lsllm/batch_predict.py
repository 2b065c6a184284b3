"""`lsllm predict --input FILE` at any size: read in chunks, written as each chunk finishes, resumable, sharded.

Memory stays flat with the file's size: the inputs are read as the file is read
(`data.inputs.iter_predict_inputs`), a chunk of `chunk_size` at a time; inside a chunk they are
sorted by length and packed as `Classifier` always does, and the chunk's records are written in
input order as soon as it is done (`record_files`: JSONL appended and fsynced, Parquet a part
file per chunk).

- **Survey.** Before the model loads, the input is read once through: every input checked (a bad
  line fails in one line naming it, before any work), counted, and the file's bytes hashed.
- **Shards** (`--shard K/N`, or torchrun's RANK/WORLD_SIZE): contiguous blocks. Shard K of N
  takes the inputs i with K*T//N <= i < (K+1)*T//N of the T in the file and writes
  `OUT-0000K-of-0000N.ext`, so the shard files, sorted by name, hold the inputs in order:
  concatenated (`cat` for JSONL) they are the output of one process.
- **Chunks** lie on a fixed grid from the shard's first input: chunk j holds inputs
  start + j*C .. start + (j+1)*C - 1. A chunk's batches, and so its numbers to the last digit,
  depend only on the chunk's inputs.
- **Resume.** The sidecar `OUT.lsllm-predict.json`, written before the first record, names the
  input (sha256, inputs), the run (a fingerprint of its model files), the engine (backend and
  dtype), the shard and the chunk size. `--resume` refuses an output made from anything else,
  counts the complete records (a torn last JSONL line does not count), cuts the output back to
  the last whole chunk and continues from there: the records are those of an uninterrupted run,
  none lost or repeated.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm.data import SeqExample, TokenExample
from lsllm.data.inputs import iter_predict_inputs
from lsllm.errors import ConfigError, DataError
from lsllm.files import atomic_write_json
from lsllm.problems import Problem
from lsllm.record_files import open_records, record_schema
from lsllm.runs import model_fingerprint
from lsllm.version import __version__

CHUNK_SIZE = 10_000  # inputs per chunk: what a kill can cost, and how far length-sorting reaches
SIDECAR_SUFFIX = ".lsllm-predict.json"
FORMAT = 1


# ---------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """Process `index` of `count` (0-based, as torchrun's RANK): a contiguous block of the inputs."""

    index: int
    count: int

    def block(self, total: int) -> tuple[int, int]:
        """[start, end) of this shard's inputs among `total`."""
        return self.index * total // self.count, (self.index + 1) * total // self.count

    def path(self, output: Path) -> Path:
        """This shard's output file: `OUT-0000K-of-0000N.ext` beside OUT (names sort in shard order)."""
        return output.with_name(f"{output.stem}-{self.index:05d}-of-{self.count:05d}{output.suffix}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def resolve_shard(flag: str | None, env: Mapping[str, str] = os.environ) -> Shard | None:
    """The shard from `--shard K/N`, else from torchrun's RANK and WORLD_SIZE (when WORLD_SIZE > 1), else None.

    Raises:
        ConfigError: a malformed --shard, or one that contradicts RANK/WORLD_SIZE.
    """
    from_env = None
    if env.get("WORLD_SIZE", "1").strip() not in ("", "1"):
        try:
            from_env = Shard(int(env.get("RANK", "")), int(env["WORLD_SIZE"]))
        except ValueError:
            raise ConfigError(f"WORLD_SIZE={env['WORLD_SIZE']!r} and RANK={env.get('RANK')!r} are not a process index "
                              "and count; run under torchrun, or unset them") from None
    if flag is None:
        return from_env
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", flag)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ConfigError(f"--shard {flag}: write K/N with 0 <= K < N (this process's index among N, counted from 0), "
                          "e.g. --shard 0/4 ... --shard 3/4")
    shard = Shard(int(match.group(1)), int(match.group(2)))
    if from_env is not None and from_env != shard:
        raise ConfigError(f"--shard {shard} contradicts torchrun's RANK={from_env.index} WORLD_SIZE={from_env.count}; "
                          "under torchrun leave --shard out (each rank takes its shard)")
    return shard if shard.count > 1 else None


# ---------------------------------------------------------------- the survey


@dataclass(frozen=True)
class Survey:
    """The input file, read once through and checked: how many inputs, and what its bytes hash to."""

    path: Path
    inputs: int
    sha256: str
    size: int
    token_lists: bool  # some inputs are token lists (CoNLL, JSONL "tokens"): for a token classifier only

    def identity(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve()), "sha256": self.sha256, "bytes": self.size, "inputs": self.inputs}

    def check_problem(self, problem: Problem) -> None:
        """Refuse token lists for a classifier that reads texts (`Problem.check_token_inputs`).

        Raises:
            ConfigError: naming the file and what to give instead.
        """
        if self.token_lists:
            problem.check_token_inputs(self.path)


def survey(path: str | Path, fields: list[str] | None, problem: Problem | None) -> Survey:
    """Read every input of `path` once (checked as prediction reads it), count them and hash the file.

    Raises:
        DataError: the first bad input, naming its line (no work has started).
        ConfigError: token inputs (CoNLL, JSONL with "tokens") for a sequence run (``problem``; a run whose
            problem type is not known here, None, is checked with `Survey.check_problem` once it is loaded).
    """
    path = Path(path)
    count, token_lists = 0, False
    for _where, example in iter_predict_inputs(path, fields=fields):
        count += 1
        if isinstance(example, TokenExample) and not token_lists:
            token_lists = True
            if problem is not None:
                problem.check_token_inputs(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return Survey(path, count, digest.hexdigest(), path.stat().st_size, token_lists)


def engine(classifier) -> str:
    """What computes the numbers: "torch float32", "torch bfloat16", "onnxruntime fp32", ..."""
    if classifier.backend != "torch":
        return classifier.backend
    return f"torch {str(next(classifier.model.parameters()).dtype).removeprefix('torch.')}"


# ---------------------------------------------------------------- the output and its sidecar


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + SIDECAR_SUFFIX)


@dataclass
class Job:
    """One process's share of an input and where it goes, before the model loads (`plan`)."""

    source: Survey
    output: Path
    shard: Shard | None
    start: int
    end: int
    chunk_size: int
    run: dict[str, str]
    resume: bool
    sidecar: dict[str, Any]

    @property
    def total(self) -> int:
        return self.end - self.start


def plan(source: Survey, output: Path, run_dir: str | Path, shard: Shard | None, chunk_size: int | None,
         resume: bool) -> Job:
    """This process's inputs and output file, with the refusals that need no model.

    Without --resume an output that exists is refused (as `lsllm train` refuses a run folder
    that holds a run); with it, the output must exist, with a sidecar naming the same input
    (sha256), the same run (fingerprint), the same shard and chunk size.

    Raises:
        ConfigError: one line naming the output and what differs, or --chunk-size < 1.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size {chunk_size}: give a number of inputs >= 1 (default {CHUNK_SIZE})")
    if shard is not None:
        output = shard.path(output)
    start, end = shard.block(source.inputs) if shard else (0, source.inputs)
    run = {"path": str(Path(run_dir).resolve()), "fingerprint": model_fingerprint(run_dir)}
    sidecar_file = sidecar_path(output)
    records = open_records(output)
    exists = records.present() or sidecar_file.exists()
    if not resume:
        if exists:
            raise ConfigError(f"--output-file {output} exists: pass --resume to continue it, or choose another "
                              f"--output-file (or delete it and {sidecar_file.name})")
        return Job(source, output, shard, start, end, chunk_size or CHUNK_SIZE, run, False, {})
    if not exists:
        raise ConfigError(f"--resume: {output} holds no predictions to continue; start without --resume")
    if not sidecar_file.is_file():
        raise ConfigError(f"--resume: {output} has no {sidecar_file.name} beside it, so what it was made from is unknown; "
                          "start again with another --output-file (or delete it)")
    saved = _read_sidecar(sidecar_file)
    was = saved.get("input") or {}
    if was.get("sha256") != source.sha256:
        raise ConfigError(f"--resume: {output} was made from another input ({was.get('path')}, {was.get('inputs')} inputs), "
                          f"not {source.path} as it is now; give the same --input, or choose another --output-file")
    if (saved.get("run") or {}).get("fingerprint") != run["fingerprint"]:
        raise ConfigError(f"--resume: {output} was made by another run ({(saved.get('run') or {}).get('path')}), not "
                          f"{run_dir}; give that run, or choose another --output-file")
    was_shard = saved.get("shard")
    if was_shard != ([shard.index, shard.count] if shard else None):
        shown = f"shard {was_shard[0]}/{was_shard[1]}" if was_shard else "no shard"
        raise ConfigError(f"--resume: {output} was made with {shown}, this process is "
                          f"{f'shard {shard}' if shard else 'no shard'}; resume with the same --shard / WORLD_SIZE")
    if chunk_size is not None and chunk_size != saved.get("chunk_size"):
        raise ConfigError(f"--resume: {output} was made with --chunk-size {saved.get('chunk_size')}; leave --chunk-size "
                          "out (or give the same) to continue it")
    return Job(source, output, shard, start, end, int(saved["chunk_size"]), run, True, saved)


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"--resume: {path} is unreadable ({str(err)[:80]}); start again with another --output-file") from None
    if not isinstance(saved, dict) or saved.get("lsllm_predict") != FORMAT or not isinstance(saved.get("chunk_size"), int):
        raise ConfigError(f"--resume: {path} is not a sidecar this lsllm writes; start again with another --output-file")
    return saved


# ---------------------------------------------------------------- the run


def run_job(job: Job, classifier, fields: list[str] | None, meter_factory: Callable[..., Any]) -> tuple[int, int]:
    """Predict this process's inputs into its output, a chunk at a time.

    Returns:
        (records in the output now, records that were already there and were kept)

    Raises:
        ConfigError: --resume with another engine (backend / dtype) than the output was made with.
        DataError: an input the model refuses, naming its line (the records before it stay).
    """
    now = engine(classifier)
    if job.resume and job.sidecar.get("engine") != now:
        raise ConfigError(f"--resume: {job.output} was made with {job.sidecar.get('engine')}, this is {now}; give the same "
                          "--backend / --dtype / --int8 to continue it, or choose another --output-file")
    schema = None
    if job.output.suffix.lower() == ".parquet":
        schema = record_schema(classifier.problem, classifier.labels, classifier.fields)
    records = open_records(job.output, schema)
    sidecar = {"lsllm_predict": FORMAT, "lsllm_version": __version__, "input": job.source.identity(), "run": job.run,
               "engine": now, "shard": [job.shard.index, job.shard.count] if job.shard else None,
               "range": [job.start, job.end], "chunk_size": job.chunk_size, "complete": False}
    kept = 0
    if job.resume:
        found = records.count()
        if found > job.total:
            raise ConfigError(f"--resume: {job.output} holds {found} records, more than the {job.total} inputs it was "
                              "made for; it was changed by hand: choose another --output-file")
        kept = records.cut_to(found if found == job.total else found // job.chunk_size * job.chunk_size)
    atomic_write_json(sidecar_path(job.output), sidecar)
    meter = meter_factory(job.total, kept)
    try:
        inputs = iter_predict_inputs(job.source.path, fields=fields, skip=job.start + kept)
        for chunk in _chunks(itertools.islice(inputs, job.total - kept), job.chunk_size):
            records.append(predict_chunk(classifier, chunk, meter))
        records.finish()
    finally:
        records.close()
        meter.close()
    atomic_write_json(sidecar_path(job.output), {**sidecar, "complete": True, "records": job.total})
    return job.total, kept


def stream_to(write: Callable[[list[dict]], None], path: Path, classifier, fields: list[str] | None, total: int,
              chunk_size: int, meter_factory: Callable[..., Any]) -> int:
    """Predict every input of `path` a chunk at a time, handing each chunk's records to `write` (stdout)."""
    meter = meter_factory(total, 0)
    try:
        for chunk in _chunks(iter_predict_inputs(path, fields=fields), chunk_size):
            write(predict_chunk(classifier, chunk, meter))
    finally:
        meter.close()
    return total


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


_INPUT = re.compile(r"input (\d+): (.*)", re.DOTALL)


def predict_chunk(classifier, chunk: Sequence[tuple[str, SeqExample | TokenExample]], meter=None) -> list[dict]:
    """The records of one chunk of (where, example), in input order (texts and token lists may be mixed).

    A refusal of the model's (`input 3: empty text`) names the input's line instead.
    """
    records: list[dict | None] = [None] * len(chunk)
    texts = [i for i, (_, example) in enumerate(chunk) if not isinstance(example, TokenExample)]
    tokens = [i for i, (_, example) in enumerate(chunk) if isinstance(example, TokenExample)]
    for indices, predict, given in (
        (texts, classifier.predict_texts, lambda e: e.fields or e.text),
        (tokens, classifier.predict_tokens, lambda e: e.tokens),
    ):
        if not indices:
            continue
        try:
            out = predict([given(chunk[i][1]) for i in indices], progress=_advancing(meter, len(indices)))
        except DataError as err:
            match = _INPUT.fullmatch(str(err))
            if match is None:
                raise
            raise DataError(f"{chunk[indices[int(match.group(1)) - 1]][0]}: {match.group(2)}") from None
        for i, record in zip(indices, out, strict=True):
            records[i] = record
    return records  # type: ignore[return-value]


def _advancing(meter, n_inputs: int) -> Callable | None:
    """A `progress` for Classifier that moves `meter` by `n_inputs` in all, batch by batch, as they finish."""
    if meter is None:
        return None

    def size(batch) -> int:  # PyTorch's packed Batch, or ONNX Runtime's list of feature indices
        return len(batch.indices) if hasattr(batch, "indices") else len(batch)

    def wrap(batches):
        batches = list(batches)
        total = sum(map(size, batches)) or 1
        done = shown = 0
        for batch in batches:
            yield batch
            done += size(batch)
            meter.update(n_inputs * done // total - shown)
            shown = n_inputs * done // total
        meter.update(n_inputs - shown)

    return wrap
