"""Classifiers of the tiny runs (tests/conftest.py `seq_run`, `token_run`) for the server tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def seq_classifier(seq_run):
    from lsllm.pipeline import load_run

    return load_run(seq_run, dtype="float32", device="cpu")[0]


@pytest.fixture(scope="session")
def token_classifier(token_run):
    from lsllm.pipeline import load_run

    return load_run(token_run, dtype="float32", device="cpu")[0]
