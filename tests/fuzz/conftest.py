"""Fixtures of the fuzz tests: a bounded hypothesis profile, a clean-error check, tiny runs.

Every fuzz test asserts one of two outcomes for whatever it generates: a correct load, or a
one-line `LsllmError` that names the file (and a line that exists in it) or the flag. Anything
else (a traceback, a silently wrong value) fails the test.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.serve.conftest import seq_classifier, token_classifier  # noqa: F401  (fixtures; the runs are in tests/conftest.py)

# Bounded so that all fuzz tests together take well under a minute on one core; no example
# database, so a run never depends on an earlier one.
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def line_count(data: bytes | str) -> int:
    """Lines as the readers count them: "\\r\\n", "\\n" and a lone "\\r" each end one."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return len(re.findall(r"\r\n|\r|\n", data)) + 1


def assert_clean(err: BaseException, path: Path | str, content: bytes | str | None = None) -> int | None:
    """`err` is one line naming `path`; returns the line it names (checked to exist), if any."""
    message = str(err)
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    assert message.startswith(str(path)), f"does not start with the file: {message!r}"
    match = re.match(re.escape(str(path)) + r":(\d+):", message)
    if match is None:
        return None
    line = int(match.group(1))
    if content is not None:
        assert 1 <= line <= line_count(content), f"line {line} of a {line_count(content)}-line file: {message!r}"
    return line


@pytest.fixture(scope="module")
def new_path(tmp_path_factory):
    """new_path(suffix) -> a fresh file path (hypothesis runs many examples per test function)."""
    folder = tmp_path_factory.mktemp("fuzz")
    counter = itertools.count()

    def _new(suffix: str, name: str | None = None) -> Path:
        sub = folder / str(next(counter))
        sub.mkdir()
        return sub / (name or f"f{suffix}")

    return _new
