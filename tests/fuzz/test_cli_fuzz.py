"""Fuzzing the command line: bad flags, --config files and run folders get one line and exit 2.

Every case runs `lsllm.cli.main` as a user would; none of them reaches training, because each
is refused while the config is built (or, for predict, before the model loads). Generated
cases: random values for the numeric flags, random YAML for --config, random JSON/YAML for
the files `compare` reads. A case passes when it either works (and the config it built is
sane) or fails with exactly one line `error: ...` naming the flag or file, and status 2.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lsllm.cli import build_parser, config_from_args, main
from lsllm.compare import compare_runs
from lsllm.config import SCHEDULERS, RunConfig
from lsllm.errors import ConfigError
from tests.fuzz.conftest import FUZZ


def one_error_line(capsys, code: int) -> str:
    """The single `error: ...` line of a refused command (status 2, no traceback)."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


FLAG_CASES = [
    ("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--lr", "0"),
    ("--weight-decay", "nan"), ("--weight-decay", "-0.1"),
    ("--warmup-ratio", "-0.5"), ("--warmup-ratio", "1.5"), ("--warmup-ratio", "nan"),
    ("--lora-dropout", "nan"), ("--lora-dropout", "1"), ("--lora-alpha", "0"), ("--lora-r", "0"),
    ("--scheduler", "bogus"), ("--attn-implementation", "bogus"),
    ("--epochs", "0"), ("--epochs", "-1"), ("--epochs", "nan"), ("--epochs", "inf"),
    ("--eval-steps", "-3"), ("--eval-steps", "0"), ("--early-stopping", "0"), ("--max-steps", "0"), ("--max-steps", "-5"),
    ("--seed", "-1"), ("--batch-size", "0"), ("--grad-accum", "0"), ("--max-length", "4"), ("--train-limit", "0"),
    ("--labels", "neg neg"), ("--labels", " "), ("--threads", "0"),
]


@pytest.mark.parametrize(("flag", "value"), FLAG_CASES)
def test_bad_training_flags_are_one_line_naming_the_flag(tmp_path, capsys, flag, value):
    code = main(["train", "--data", "sst2-sample", "--output", str(tmp_path / "run"), flag, *(value.split(" ") if value.strip() else [value])])
    line = one_error_line(capsys, code)
    assert flag.removeprefix("--").replace("lora-", "") in line.replace("_", "-"), line
    assert not (tmp_path / "run").exists()  # refused before a run folder is made


def test_epochs_zero_is_fine_with_max_steps():
    args = build_parser().parse_args(["train", "--data", "x", "--epochs", "0", "--max-steps", "3"])
    cfg, _ = config_from_args(args)
    assert cfg.train.max_steps == 3


def test_schedulers_are_transformers_names():
    from transformers import SchedulerType

    assert set(SCHEDULERS) <= {s.value for s in SchedulerType}


CONFIG_CASES = [
    (b"", "empty config file"),
    (b"# nothing here\n", "empty config file"),
    (b"train:\n  output: caf\xe9\n", "not UTF-8"),
    (b"train:\n  lr: [1\n  seed: 3\n", "not valid YAML"),
    (b"- a\n- b\n", "expected a mapping"),
    (b"train: 5\n", "section 'train' must be a mapping"),
    (b"train:\n  lr: abc\n", "train.lr must be a number"),
    (b"train:\n  lr: .nan\n", "--lr must be a finite number"),
    (b"train:\n  batch_size: [1]\n", "train.batch_size must be an integer"),
    (b"train:\n  pack: maybe\n", "train.pack must be true or false"),
    (b"train:\n  epochs: 0\n", "--epochs must be > 0"),
    (b"data:\n  labels: {a: 1}\n", "data.labels must be a list of names"),
    (b"data:\n  labels: [yes, no]\n", "data.labels must be a list of names"),
    (b"model:\n  name: 123\n", "model.name must be a string"),
    (b"model:\n  attn_implementation: bogus\n", "--attn-implementation must be one of"),
    (b"format_version: x\n", "format_version must be an integer"),
    (b"format_version: 99\n", "newer than this lsllm"),
    (b"nonsense: {}\n", "unknown section 'nonsense'"),
    (b"train:\n  learning_rate: 1\n", "unknown key(s) in section 'train'"),
]


@pytest.mark.parametrize(("content", "message"), CONFIG_CASES)
@pytest.mark.parametrize("command", [["train"], ["sft", "train"]])
def test_bad_config_files_are_one_line_naming_the_file_or_setting(tmp_path, capsys, command, content, message):
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    code = main([*command, "--config", str(config), "--data", "sst2-sample", "--output", str(tmp_path / "run")])
    line = one_error_line(capsys, code)
    assert message in line, line
    if message in ("empty config file", "not UTF-8", "not valid YAML", "expected a mapping"):
        assert str(config) in line


def test_config_path_problems(tmp_path, capsys):
    for path in (tmp_path, tmp_path / "missing.yaml"):
        line = one_error_line(capsys, main(["train", "--config", str(path), "--data", "x"]))
        assert str(path) in line


def test_yaml_1_1_exponents_and_single_names_are_read_as_meant(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 2e-4\n  epochs: 1\ndata:\n  text_column: review\n  labels: [0, 1]\n")
    cfg, _ = config_from_args(build_parser().parse_args(["train", "--config", str(config)]))
    assert cfg.train.lr == 2e-4 and cfg.train.epochs == 1.0
    assert cfg.data.text_column == ["review"] and cfg.data.labels == ["0", "1"]


NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["nan", "-inf", "1e999", "0x10", "1_000", "", " ", "abc", "1e-30", "-0"]),
)
NUMERIC_FLAGS = ["--lr", "--weight-decay", "--warmup-ratio", "--epochs", "--lora-dropout", "--eval-steps", "--max-steps",
                 "--seed", "--lora-alpha", "--batch-size", "--early-stopping", "--max-length"]


@given(values=st.dictionaries(st.sampled_from(NUMERIC_FLAGS), NUMBER_TEXT, min_size=1, max_size=4))
@FUZZ
def test_random_numeric_flags_build_a_sane_config_or_are_refused(values):
    argv = ["train", "--data", "x"] + [part for flag, value in values.items() for part in (flag, value)]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: not a number for an int/float flag
        assert stop.code == 2
        return
    try:
        cfg, _ = config_from_args(args)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    t = cfg.train
    assert all(math.isfinite(x) for x in (t.lr, t.weight_decay, t.warmup_ratio, t.epochs, cfg.lora.dropout))
    assert t.lr > 0 and t.weight_decay >= 0 and 0 <= t.warmup_ratio < 1 and 0 <= cfg.lora.dropout < 1
    assert t.max_steps > 0 or t.epochs > 0
    assert t.eval_steps is None or t.eval_steps >= 1
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # what a run saves, it reads back


FIELDS = {
    "model": ["name", "bidirectional", "unmask_layers", "pooling", "dtype", "attn_implementation"],
    "lora": ["r", "alpha", "dropout", "target_modules"],
    "data": ["data", "task", "text_column", "labels", "train_limit", "max_length", "tag_column"],
    "train": ["epochs", "max_steps", "batch_size", "lr", "warmup_ratio", "scheduler", "eval_steps", "seed", "pack"],
}
YAML_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=8),
              st.sampled_from(["2e-4", "cosine", "sdpa", "q_proj", "mean", "seq"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)


@st.composite
def configs(draw):
    out = {}
    for section in draw(st.lists(st.sampled_from(list(FIELDS) + ["bogus"]), unique=True, max_size=4)):
        keys = FIELDS.get(section, ["x"])
        out[section] = draw(st.dictionaries(st.sampled_from(keys + ["typo"]), YAML_VALUE, max_size=3)) if draw(st.integers(0, 9)) else draw(YAML_VALUE)
    return out


@given(config=configs())
@FUZZ
def test_random_config_files_build_a_sane_config_or_are_refused(new_path, config):
    path = new_path(".yaml")
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    args = argparse.Namespace(config=str(path))
    try:
        cfg, _ = config_from_args(args)
    except ConfigError as err:
        assert "\n" not in str(err), str(err)
        return
    assert isinstance(cfg.train.lr, float) and math.isfinite(cfg.train.lr) and cfg.train.lr > 0
    assert isinstance(cfg.lora.target_modules, list) and all(isinstance(m, str) for m in cfg.lora.target_modules)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------- predict and compare


@pytest.mark.parametrize("content", ["", "\n \n", "\ufeff\n"])
def test_predict_on_an_empty_input_file_is_an_error_before_the_model_loads(tmp_path, capsys, content):
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    line = one_error_line(capsys, main(["predict", str(tmp_path / "no-run"), "--input", str(empty)]))
    assert str(empty) in line and "no inputs" in line


GOOD_CONFIG = {"model": {"name": "smollm2-135m"}, "data": {"data": "sst2"}, "train": {"seed": 1}}
GOOD_METRICS = {"test": {"accuracy": 0.9, "f1_macro": 0.8}}
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["test", "validation", "train", "accuracy",
                                                                                 "f1_macro", "n_examples", "x"]), inner, max_size=3),
    max_leaves=6,
)
# Deep nesting only for JSON here: PyYAML takes seconds to reach its recursion limit (tested once, below).
GARBAGE_BYTES = st.sampled_from([b"", b"\xff\xfe", b"{", b'{"test": ' + b"9" * 5000 + b"}", b"NaN",
                                 b'{"test": {"accuracy": NaN}}', b"model: [1, 2", b"1: {2: 3}\nmodel: {}\n"])


@given(metrics=st.one_of(JSON_VALUE.map(lambda v: json.dumps(v).encode()), GARBAGE_BYTES, st.just(b"[" * 5000)),
       config=st.one_of(st.just(yaml.safe_dump(GOOD_CONFIG).encode()), JSON_VALUE.map(lambda v: yaml.safe_dump(v).encode()),
                        GARBAGE_BYTES))
@FUZZ
def test_compare_on_garbage_run_files_is_a_table_or_one_line(new_path, metrics, config):
    run = new_path("", "run")
    run.mkdir()
    (run / "metrics.json").write_bytes(metrics)
    (run / "config.yaml").write_bytes(config)
    good = new_path("", "good")
    good.mkdir()
    (good / "metrics.json").write_text(json.dumps(GOOD_METRICS))
    (good / "config.yaml").write_text(yaml.safe_dump(GOOD_CONFIG))
    try:
        table = compare_runs([good, run])
    except ConfigError as err:
        assert "\n" not in str(err) and str(run) in str(err), str(err)
        return
    rows = table.splitlines()[2:]
    assert rows[0].startswith("| LS-LLM | smollm2-135m | sst2 |")
    assert all("nan" not in "|".join(row.split("|")[4:]).lower() for row in rows), table  # counts, seeds, metrics


def test_deeply_nested_yaml_is_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("[" * 1200)
    assert str(config) in one_error_line(capsys, main(["train", "--config", str(config), "--data", "x"]))
    (tmp_path / "metrics.json").write_text(json.dumps(GOOD_METRICS))
    assert str(config) in one_error_line(capsys, main(["compare", str(tmp_path)]))


def test_compare_cli_on_a_garbage_metrics_file(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(GOOD_CONFIG))
    (tmp_path / "metrics.json").write_text('["not", "metrics"]')
    line = one_error_line(capsys, main(["compare", str(tmp_path)]))
    assert str(tmp_path / "metrics.json") in line and "retrain or restore" in line


# ------------------------------------------------------------------------- a damaged run folder

MODEL_FILES = ["lsllm.json", "config.json", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
               "tokenizer_config.json"]
DAMAGE = ["delete", "empty", "garbage", "list", "half"]
COMMANDS = ["predict", "eval", "merge", "serve"]
# Every file meets every kind of damage; the four commands take turns, so each sees every file.
DAMAGE_CASES = [(name, how, COMMANDS[(i + j) % 4]) for i, name in enumerate(MODEL_FILES) for j, how in enumerate(DAMAGE)]


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes({"empty": b"", "garbage": b"\x00\xffgarbage", "list": b"[1, 2]", "half": data[: len(data) // 2]}[how])


def _command(command: str, run, tmp_path) -> list[str]:
    import socket

    if command == "serve":
        with socket.socket() as probe:  # a free port: the socket is bound before the model loads
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return ["serve", str(run), "--port", str(port)]
    return {"predict": ["predict", str(run), "a great movie"], "eval": ["eval", str(run), "--split", "test"],
            "merge": ["merge", str(run), str(tmp_path / "merged")]}[command]


@pytest.fixture(scope="module")
def run_copy(seq_run, tmp_path_factory):
    """A copy of the trained tiny run; each test damages one file and puts it back."""
    import shutil

    copy = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(seq_run, copy)
    return copy


@pytest.mark.parametrize(("name", "how", "command"), DAMAGE_CASES)
def test_a_damaged_model_folder_is_one_line_naming_the_file(run_copy, tmp_path, capsys, name, how, command):
    path = run_copy / "model" / name
    original = path.read_bytes()
    _damage(path, how)
    try:
        line = one_error_line(capsys, main(_command(command, run_copy, tmp_path)))
    finally:
        path.write_bytes(original)
    if name == "lsllm.json" and how == "delete":
        assert "not a finished lsllm run" in line
    else:
        assert str(path) in line and "retrain or restore the run" in line, line
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("info", [{"task": "seq"}, {"task": "nope", "labels": ["a"], "max_length": 8, "label_all_subtokens": False},
                                  {"task": "seq", "labels": [], "max_length": 8, "label_all_subtokens": False},
                                  {"task": "seq", "labels": ["a", 1], "max_length": 8, "label_all_subtokens": False},
                                  {"task": "seq", "labels": ["a"], "max_length": "8", "label_all_subtokens": False}])
def test_a_run_info_of_the_wrong_shape_is_one_line(run_copy, capsys, info):
    path = run_copy / "model" / "lsllm.json"
    original = path.read_bytes()
    path.write_text(json.dumps(info))
    try:
        line = one_error_line(capsys, main(["predict", str(run_copy), "a great movie"]))
    finally:
        path.write_bytes(original)
    assert str(path) in line and "retrain or restore the run" in line


def _edit_json(key_path: tuple, change):
    def edit(path):
        data = json.loads(path.read_text())
        holder = data
        for key in key_path[:-1]:
            holder = holder[key]
        holder[key_path[-1]] = change(holder[key_path[-1]])
        path.write_text(json.dumps(data))
    return edit


def _edit_tensors(pick):
    """Rename one tensor of a safetensors file (the first whose name ``pick`` accepts): a file that still loads."""
    def edit(path):
        from safetensors.torch import load_file, save_file

        tensors = load_file(path)
        name = next(n for n in sorted(tensors) if pick(n))
        tensors[name.replace("weight", "weigth")] = tensors.pop(name)
        save_file(tensors, path)
    return edit


# Edits that leave every file readable: before manifest.json, some loaded with exit 0 and served garbage
# (PEFT only warns about a missing adapter tensor), others ended in tracebacks.
SEMANTIC_DAMAGE = {
    "lora tensor renamed": ("adapter_model.safetensors", _edit_tensors(lambda n: "lora_A" in n)),
    "head tensor renamed": ("adapter_model.safetensors", _edit_tensors(lambda n: "score" in n)),
    "target_modules edited": ("adapter_config.json", _edit_json(("target_modules",), lambda t: sorted(t)[:1])),
    "rank halved": ("adapter_config.json", _edit_json(("r",), lambda r: max(1, r // 2))),
    "layers cut": ("config.json", _edit_json(("num_hidden_layers",), lambda n: max(1, n - 1))),
    "labels reversed": ("lsllm.json", _edit_json(("labels",), lambda labels: labels[::-1])),
    "a third label": ("lsllm.json", _edit_json(("labels",), lambda labels: [*labels, "neutral"])),
    "task edited": ("lsllm.json", _edit_json(("task",), lambda _: "token")),
    "tokenizer edited": ("tokenizer_config.json", _edit_json(("model_max_length",), lambda _: 7)),
}


@pytest.mark.parametrize(("case", "command"), [(case, COMMANDS[i % 4]) for i, case in enumerate(SEMANTIC_DAMAGE)])
def test_a_model_folder_edited_after_saving_is_refused_naming_the_file(run_copy, tmp_path, capsys, case, command):
    name, edit = SEMANTIC_DAMAGE[case]
    path = run_copy / "model" / name
    original = path.read_bytes()
    edit(path)
    assert path.read_bytes() != original
    try:
        line = one_error_line(capsys, main(_command(command, run_copy, tmp_path)))
    finally:
        path.write_bytes(original)
    assert line.startswith(f"error: {path}: damaged (") and "retrain or restore the run" in line, line
    assert not (tmp_path / "merged").exists()
    if case.endswith("renamed"):
        assert "tensor missing: " in line


def test_a_run_saved_before_manifests_still_loads(run_copy, tmp_path, capsys):
    """Without manifest.json (a run saved before manifests) the run loads as it was saved: `lsllm
    predict` on the test sentences gives the labels and probabilities the run wrote at training."""
    saved = [json.loads(line) for line in (run_copy / "predictions.jsonl").read_text().splitlines()]
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(r["text"] + "\n" for r in saved))
    manifest = run_copy / "model" / "manifest.json"
    original = manifest.read_bytes()
    manifest.unlink()
    try:
        capsys.readouterr()
        assert main(["predict", str(run_copy), "--input", str(texts), "--dtype", "float32"]) == 0
        loaded = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    finally:
        manifest.write_bytes(original)
    assert [r["text"] for r in loaded] == [r["text"] for r in saved]
    assert [r["label"] for r in loaded] == [r["label"] for r in saved]
    for new, old in zip(loaded, saved, strict=True):
        assert new["probabilities"] == pytest.approx(old["probabilities"], abs=1e-4)


@pytest.mark.parametrize("how", ["delete", "half"])
def test_sft_adapter_damage_is_one_line(run_copy, tmp_path, how):
    import shutil

    from lsllm.config import ModelConfig
    from lsllm.sft.loading import load_trained

    adapter = tmp_path / "model"
    shutil.copytree(run_copy / "model", adapter)
    (adapter / "lsllm-sft.json").write_text("{}")
    _damage(adapter / "adapter_model.safetensors", how)
    with pytest.raises(ConfigError) as err:
        load_trained(ModelConfig(), adapter)
    assert str(adapter / "adapter_model.safetensors") in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------- predict --input end to end

INPUT_TEXT = st.text(alphabet=st.one_of(st.sampled_from("\u2028\u0085\u200b\x00\t\r\n \"{}[],:é😀"), st.characters(codec="utf-8")),
                     max_size=40)
INPUT_FILES = st.one_of(
    st.tuples(st.just(".txt"), INPUT_TEXT),
    st.tuples(st.just(".jsonl"), st.lists(st.one_of(
        st.fixed_dictionaries({"text": INPUT_TEXT}), st.fixed_dictionaries({"tokens": st.lists(INPUT_TEXT, max_size=4)}),
        st.fixed_dictionaries({"text": st.one_of(st.integers(), st.none())}), st.dictionaries(st.text(max_size=5), INPUT_TEXT, max_size=2),
    ), max_size=4).map(lambda objs: "\n".join(json.dumps(o, ensure_ascii=False) for o in objs))),
    st.tuples(st.just(".tsv"), st.lists(INPUT_TEXT, max_size=4).map(lambda rows: "text\n" + "\n".join(rows))),
    st.tuples(st.just(".conll"), INPUT_TEXT),
)


@pytest.mark.parametrize("task", ["seq", "token"])
@given(case=INPUT_FILES)
@FUZZ
def test_predict_input_files_predict_or_fail_in_one_line(new_path, capsys, monkeypatch, seq_classifier, token_classifier,
                                                          task, case):
    import lsllm.inference.backends

    classifier = seq_classifier if task == "seq" else token_classifier
    opened = lsllm.inference.backends.Opened(classifier, None, None, "run")
    monkeypatch.setattr(lsllm.inference.backends, "open_classifier", lambda *args, **kwargs: opened)  # the run, loaded once
    suffix, content = case
    path = new_path(suffix)
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    capsys.readouterr()
    code = main(["predict", "run", "--input", str(path)])
    if code == 0:
        records = [json.loads(line) for line in capsys.readouterr().out.split("\n") if line]  # not splitlines: U+2028
        assert records and all(("label" in r) if task == "seq" else ("tags" in r) for r in records)
    else:
        line = one_error_line(capsys, code)
        assert str(path) in line or line.startswith("error: input "), line


# ------------------------------------------------------------------------- paths a user gets wrong


def test_output_paths_of_the_wrong_kind_are_one_line_naming_the_path(run_copy, tmp_path, capsys):
    """Each of these ended in a traceback (FileExistsError, IsADirectoryError, NotADirectoryError, FileNotFoundError)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    cases = [
        (["train", "--data", "sst2-sample", "--output", str(a_file)], f"--output {a_file}: a file"),
        (["predict", str(run_copy), "a great movie", "--output-file", str(a_dir)], f"--output-file {a_dir} is a folder"),
        (["predict", str(run_copy), "a great movie", "--output-file", str(tmp_path / "no" / "x.jsonl")], "does not exist"),
        (["merge", str(run_copy), str(a_file)], f"{a_file} is a file"),
        (["report", str(run_copy), "--output", str(tmp_path / "no-such-dir" / "report.html")], "does not exist"),
        (["report", str(run_copy), "--output", str(a_dir)], "a folder"),
    ]
    for argv, message in cases:
        line = one_error_line(capsys, main(argv))
        assert message in line, (argv, line)
    assert a_file.read_text() == "x" and list(a_dir.iterdir()) == []


def test_a_file_that_is_not_gguf_is_one_line(tmp_path, capsys):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"\xe5\xa5\x00\xaa" + b"not a model" * 10)
    line = one_error_line(capsys, main(["train", "--data", "sst2-sample", "--model", str(fake), "--output", str(tmp_path / "r")]))
    assert str(fake) in line and "not a GGUF file" in line
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\x07\x00\x00\x00" + b"\x00" * 12)
    line = one_error_line(capsys, main(["train", "--data", "sst2-sample", "--model", str(truncated), "--output", str(tmp_path / "s")]))
    assert str(truncated) in line
