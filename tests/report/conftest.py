"""The tiny real runs of tests/conftest.py under the report tests' names (the browser tests use them too)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def report_seq_run(seq_run) -> Path:
    return seq_run


@pytest.fixture(scope="session")
def report_token_run(token_run) -> Path:
    return token_run
