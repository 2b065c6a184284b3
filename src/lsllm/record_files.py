"""Prediction records on disk, written a chunk at a time, so that a killed process leaves whole records.

`lsllm predict --output-file` appends each finished chunk and can continue what a kill left
(`--resume`). Two formats, chosen by the file's suffix (`open_records`):

- JSONL (every name but .parquet): one record per line, appended and then flushed and fsynced
  per chunk. A kill leaves complete lines and at most one torn last line; `count` counts the
  complete ones and `cut_to` truncates the file after the first n.
- Parquet: a Parquet file is readable only once its footer is written, last, so an unfinished
  one can be neither read nor appended to. Each chunk is therefore written as a file of its
  own in the folder `OUT.parts/` (`part-000000.parquet`, ..., written under a temporary name
  and renamed), and `finish` joins the parts into OUT, one row group per chunk, and removes the
  folder. A kill leaves whole parts; one during `finish` leaves the parts, joined again next time.

The Parquet columns are the record's keys (`record_schema`), typed from the run (labels as the
fields of `probabilities`), so that every part has the same schema.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsllm.problems import Problem

PARQUET_SUFFIX = ".parquet"
_BLOCK = 1 << 20


def open_records(path: str | Path, schema: Any = None) -> JsonlRecords | ParquetRecords:
    """The record file at `path`: Parquet for a .parquet name (its `schema` from `record_schema`), else JSONL."""
    path = Path(path)
    return ParquetRecords(path, schema) if path.suffix.lower() == PARQUET_SUFFIX else JsonlRecords(path)


class JsonlRecords:
    """A JSONL file of records, appended a chunk at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def present(self) -> bool:
        """Whether the file holds anything (an empty file holds no record)."""
        return self.path.is_file() and self.path.stat().st_size > 0

    def count(self) -> int:
        """Complete records: lines ended by a line break (a torn last line does not count)."""
        if not self.path.is_file():
            return 0
        n = 0
        with open(self.path, "rb") as handle:
            while block := handle.read(_BLOCK):
                n += block.count(b"\n")
        return n

    def cut_to(self, n: int) -> int:
        """Keep the first `n` records (and no torn line after them); returns `n`."""
        if not self.path.is_file():
            self.path.touch()
            return 0
        offset = seen = 0
        with open(self.path, "r+b") as handle:
            while seen < n and (block := handle.read(_BLOCK)):
                start = 0
                while seen < n and (end := block.find(b"\n", start)) >= 0:
                    seen, start = seen + 1, end + 1
                offset += start if seen == n else len(block)
            if seen < n:
                raise ValueError(f"{self.path} holds {seen} records, fewer than {n}")
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())
        return n

    def append(self, records: Sequence[dict]) -> None:
        """Write the records at the end, then flush and fsync: they survive a kill from here on."""
        if self._handle is None:
            self._handle = open(self.path, "ab")  # noqa: SIM115 (kept open across chunks; closed by finish)
        self._handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def finish(self) -> None:
        """Close the file (created empty when no record was written)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.touch()

    def close(self) -> None:
        """Close the file, as it is (an error stopped the run: what was written stays, for --resume)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ParquetRecords:
    """A Parquet file of records, written as one part file per chunk and joined by `finish`."""

    def __init__(self, path: Path, schema: Any) -> None:
        self.path = path
        self.parts = path.with_name(path.name + ".parts")
        self.schema = schema

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def present(self) -> bool:
        return self.path.is_file() or bool(self._part_files())

    def count(self) -> int:
        """Records in the finished file, or else in the whole parts written so far."""
        import pyarrow.parquet as pq

        if self.path.is_file():
            return pq.ParquetFile(self.path).metadata.num_rows
        return sum(pq.ParquetFile(part).metadata.num_rows for part in self._part_files())

    def cut_to(self, n: int) -> int:
        """Keep the parts that hold the first `n` records (whole parts only); returns the records kept."""
        import pyarrow.parquet as pq

        if self.path.is_file():
            if self.count() > n:
                raise ValueError(f"{self.path} holds more than {n} records")
            return self.count()
        for stale in self.parts.glob(".*") if self.parts.is_dir() else []:  # a part killed while being written
            stale.unlink()
        kept = 0
        for part in self._part_files():
            rows = pq.ParquetFile(part).metadata.num_rows
            if kept + rows <= n:
                kept += rows
            else:
                part.unlink()
        return kept

    def append(self, records: Sequence[dict]) -> None:
        """Write the records as the next part file (temporary name, fsync, rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.parts.mkdir(exist_ok=True)
        final = self.parts / f"part-{len(self._part_files()):06d}.parquet"
        tmp = self.parts / f".{final.name}.tmp"
        pq.write_table(pa.Table.from_pylist(list(records), schema=self.schema), tmp, row_group_size=max(1, len(records)))
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(self.parts)

    def finish(self) -> None:
        """Join the parts into the file (one row group per part) and remove the parts folder."""
        import pyarrow.parquet as pq

        if not self.path.is_file():
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with pq.ParquetWriter(tmp, self.schema) as writer:
                for part in self._part_files():
                    table = pq.read_table(part, schema=self.schema)
                    writer.write_table(table, row_group_size=max(1, table.num_rows))
            _fsync(tmp)
            os.replace(tmp, self.path)
            _fsync(self.path.parent)
        shutil.rmtree(self.parts, ignore_errors=True)

    def close(self) -> None:
        """Nothing held open between chunks."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def record_schema(problem: Problem, labels: Sequence[str], fields: Sequence[str] | None = None) -> Any:
    """The Arrow schema of a run's prediction records (prediction.py's record layout): text, [fields], then the
    problem type's columns (`Problem.record_columns`).
    """
    import pyarrow as pa

    columns: list[tuple[str, Any]] = [("text", pa.string())]
    if fields and len(fields) > 1:
        columns.append(("fields", pa.struct([(name, pa.string()) for name in fields])))
    return pa.schema(columns + problem.record_columns(labels))
