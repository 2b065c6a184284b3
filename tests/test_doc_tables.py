"""The results tables of README.md and docs/ equal their records (docs/tables.py generates them).

A number edited by hand in a generated table, or a record in bench/results changed without
`make docs-tables`, fails here; so does a marked table no generator knows or a generator whose
table was removed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_table_equals_its_record(tables):
    stale = []
    for path in tables.doc_files():
        _, changed = tables.rewrite(path.read_text(), str(path))
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
    assert not stale, f"tables that differ from their records (run `make docs-tables`): {stale}"


def test_every_marked_table_has_a_generator_and_every_generator_its_table(tables):
    assert set(tables.blocks()) == set(tables.GENERATORS)


def test_a_number_edited_by_hand_is_caught(tables):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- table: readme-speed -->.*?<!-- /table -->", readme, re.S).group(0)
    edited = block.replace("**6.57x**", "**6.60x**", 1)
    assert edited != block
    _, changed = tables.rewrite(readme.replace(block, edited), "README.md")
    assert changed == ["readme-speed"]


def test_a_record_changed_without_regenerating_is_caught(tables, tmp_path, monkeypatch):
    shutil.copytree(tables.BENCH, tmp_path / "results")
    path = tmp_path / "results" / "serve_load.json"
    record = json.loads(path.read_text())
    record["levels"][0]["requests_per_s"] += 1
    path.write_text(json.dumps(record))
    monkeypatch.setattr(tables, "BENCH", tmp_path / "results")
    serving = (ROOT / "docs" / "serving.md").read_text()
    assert tables.rewrite(serving, "docs/serving.md")[1] == ["serve-load"]


def test_the_seeds_the_tables_name_are_the_defaults_of_what_ran(tables):
    from lsllm.config import TrainConfig

    assert TrainConfig().seed == tables.TRAIN_SEED_DEFAULT
    throughput = (ROOT / "bench" / "throughput.py").read_text()
    assert f'"--seed", type=int, default={tables.THROUGHPUT_SEED_DEFAULT})' in throughput
    assert f"torch.manual_seed({tables.SFT_SPEED_SEED})" in (ROOT / "bench" / "sft_speed.py").read_text()


def test_a_goal_is_met_only_when_every_repeat_meets_it(tables):
    assert tables._goal([1.3, 1.25, 1.21], 1.2) == "met (every repeat)"
    assert tables._goal([1.23, 1.18, 1.70], 1.2).startswith("**not established**")
    assert tables._goal([5.05, 5.94, 6.19], 6.0).startswith("**not met**")
