"""The `lsllm` command line: a thin layer over the library.

    lsllm train   --data sst2 --data-dir ../shared/data --preset ls-llama --epochs 1
    lsllm train   --data conll03 --data-dir ../shared/data --bidirectional --train-limit 2000
    lsllm eval    runs/sst2-... --split test
    lsllm predict runs/conll03-... "EU rejects German call to boycott British lamb ."
    lsllm merge   runs/sst2-... merged/
    lsllm datasets
    lsllm sft train --data sst2 --train-limit 1000 ; lsllm sft eval RUN ; lsllm compare RUN RUN ...
    lsllm serve   runs/sst2-...

Training flags are generated from the config dataclasses (config.py), so every setting has one
name in YAML and on the command line. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsllm.config import DataConfig, LoraSettings, ModelConfig, RunConfig, TrainConfig, read_yaml_mapping
from lsllm.errors import ConfigError, LsllmError

SECTIONS = {"model": ModelConfig, "lora": LoraSettings, "data": DataConfig, "train": TrainConfig}
# flag names that differ from "<field>" with dashes
FLAG_NAMES = {("model", "name"): "model", ("lora", "target_modules"): "target-modules"}


def flag_for(section: str, name: str) -> str:
    if (section, name) in FLAG_NAMES:
        return FLAG_NAMES[(section, name)]
    prefix = "lora-" if section == "lora" else ""
    return prefix + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str] = tuple(SECTIONS), skip: set[str] = frozenset(),
                     classes: dict[str, type] | None = None) -> None:
    """One flag per config field; defaults are SUPPRESS so we know which flags were given."""
    classes = classes or SECTIONS
    for section in sections:
        group = parser.add_argument_group(section)
        for f in dataclasses.fields(classes[section]):
            flag = flag_for(section, f.name)
            if flag in skip:
                continue
            kind = str(f.type)
            kwargs: dict[str, Any] = {"dest": f"{section}.{f.name}", "default": argparse.SUPPRESS, "help": f.metadata.get("help")}
            if kind == "bool":
                group.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, **kwargs)
                continue
            kwargs["metavar"] = f.name.upper()
            if kind.startswith("list"):
                kwargs["nargs"] = "+"
            elif kind.startswith("int"):
                kwargs["type"] = int
            elif kind.startswith("float"):
                kwargs["type"] = float
            group.add_argument(f"--{flag}", **kwargs)


def config_from_args(args: argparse.Namespace, config_cls: Any = RunConfig, sections: Sequence[str] = tuple(SECTIONS)) -> tuple[Any, set[str]]:
    """A run config from --config YAML overlaid with the flags given; returns it and the explicit fields."""
    raw: dict[str, dict] = {}
    explicit: set[str] = set()
    if getattr(args, "config", None):
        path = Path(args.config)
        for key, section in read_yaml_mapping(path).items():
            if key in sections:
                if not isinstance(section, dict):
                    raise ConfigError(f"{path}: section {key!r} must be a mapping")
                raw[key] = dict(section)
                explicit.update(f"{key}.{name}" for name in section)
    for dotted, value in vars(args).items():
        if "." in dotted:
            section, name = dotted.split(".", 1)
            raw.setdefault(section, {})[name] = value
            explicit.add(dotted)
    return config_cls.from_dict(raw), explicit


# ---------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from lsllm.training import train

    cfg, explicit = config_from_args(args)
    _yaml_threads(cfg)
    if not cfg.data.data and not cfg.train.resume:
        raise ConfigError("--data is required: a built-in name (lsllm datasets), a folder or a file")
    run = train(cfg, explicit)
    from lsllm.runs import is_main_process

    if is_main_process():  # under torchrun only rank 0 writes and reports the run
        _print_results(run / "metrics.json", run)
    return 0


def _print_results(metrics_path: Path, run: Path) -> None:
    from lsllm.reporting import metrics_table

    results = {split: m for split, m in json.loads(metrics_path.read_text()).items() if split in ("validation", "test")}
    task = "seq" if any("accuracy" in m for m in results.values()) else "token"
    print(metrics_table(results, task))
    print(f"run written to {run}")


def _data_overrides(args: argparse.Namespace, base: DataConfig) -> DataConfig:
    values = dataclasses.asdict(base)
    for dotted, value in vars(args).items():
        if dotted.startswith("data."):
            values[dotted.split(".", 1)[1]] = value
    return DataConfig(**values)


def cmd_eval(args: argparse.Namespace) -> int:
    from lsllm.data import load_data
    from lsllm.reporting import metrics_table
    from lsllm.runs import RunDir, atomic_write_json, load_run

    classifier, cfg = load_run(args.run_dir)
    data_cfg = _data_overrides(args, cfg.data)
    data_cfg.train_limit = 1  # only the evaluated split matters; keep the read of train cheap
    bundle = load_data(data_cfg)
    if args.split not in bundle.splits:
        raise ConfigError(f"{bundle.name} has no {args.split} split (it has {', '.join(bundle.splits)})")
    _check_labels(bundle.task, bundle.labels, classifier)
    metrics, _ = classifier.evaluate(bundle.splits[args.split], progress=_progress("evaluating"))
    out = RunDir(Path(args.run_dir)).eval_file(args.split)
    atomic_write_json(out, {args.split: metrics, "data": data_cfg.data})
    print(metrics_table({args.split: metrics}, bundle.task))
    print(f"written to {out}")
    return 0


def _check_labels(task: str, labels: list[str], classifier) -> None:
    if task != classifier.task:
        raise ConfigError(f"the run is a {classifier.task} model but the data is a {task} dataset")
    unknown = sorted(set(labels) - set(classifier.labels))
    if unknown:
        raise ConfigError(f"labels {', '.join(unknown)} are not in the run's label set ({', '.join(classifier.labels)}); "
                          "evaluate on data with the same labels")


def cmd_predict(args: argparse.Namespace) -> int:
    from lsllm.data import SeqExample, TokenExample, read_predict_inputs
    from lsllm.runs import atomic_write_jsonl, load_run

    if not args.texts and not args.input:
        raise ConfigError("give texts as arguments or --input FILE (.txt one per line, or .jsonl)")
    classifier, _ = load_run(args.run_dir)
    records: list[dict] = []
    if args.texts:
        records += classifier.predict_texts(args.texts, progress=_progress("predicting"))
    if args.input:
        inputs = read_predict_inputs(Path(args.input))
        texts = [x.text for x in inputs if isinstance(x, SeqExample)]
        tokens = [x.tokens for x in inputs if isinstance(x, TokenExample)]
        if texts:
            records += classifier.predict_texts(texts, progress=_progress("predicting"))
        if tokens:
            records += classifier.predict_tokens(tokens, progress=_progress("predicting"))
    if args.output_file:
        atomic_write_jsonl(Path(args.output_file), records)
        print(f"{len(records)} predictions written to {args.output_file}", file=sys.stderr)
    else:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from lsllm.runs import load_run

    classifier, _ = load_run(args.run_dir, merge=True, dtype="float32", device="cpu")
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder")
    classifier.model.save_pretrained(out)
    classifier.tokenizer.save_pretrained(out)
    print(f"merged model written to {out} (load with transformers.AutoModelFor{'Sequence' if classifier.task == 'seq' else 'Token'}Classification or lsllm)")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from lsllm.data import REGISTRY
    from lsllm.data.loading import data_dir

    folder = data_dir(DataConfig(data="", data_dir=args.data_dir))
    print(f"{'name':<14}{'task':<7}{'offline':<34}labels")
    for name, spec in REGISTRY.items():
        labels = ", ".join(spec.labels) + (" (BIO)" if spec.task == "token" else "")
        print(f"{name:<14}{spec.task:<7}{_offline_status(spec.resource, folder, name):<34}{labels}")
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in REGISTRY) if folder and folder.is_dir() else []
    for name in extra:
        print(f"{name:<14}{'?':<7}{_offline_status(None, folder, name):<34}(from the folder's files)")
    if folder is None:
        print("\n(no data folder: pass --data-dir DIR or set LSLLM_DATA_DIR to use local copies; otherwise the hub is tried)")
    return 0


def _offline_status(resource: str | None, folder: Path | None, name: str) -> str:
    if resource:
        return "yes (bundled)"
    splits = sorted(p.stem for p in (folder / name).glob("*.*") if p.stem in ("train", "validation", "dev", "test")) if folder else []
    return f"yes: {', '.join(splits)}" if splits else "no (hub only)"


def cmd_sft_train(args: argparse.Namespace) -> int:
    from lsllm.sft.config import SFTRunConfig
    from lsllm.sft.training import train_sft

    cfg, _ = config_from_args(args, SFTRunConfig, SFT_SECTIONS)
    _yaml_threads(cfg)
    if not cfg.data.data and not cfg.train.resume:
        raise ConfigError("--data is required: a built-in name (lsllm datasets), a folder or a file")
    run = train_sft(cfg)
    _print_results(run / "metrics.json", run)
    return 0


def cmd_sft_eval(args: argparse.Namespace) -> int:
    from lsllm.reporting import metrics_table
    from lsllm.runs import RunDir, atomic_write_json
    from lsllm.sft.evaluation import evaluate_sft

    overrides = {dotted.split(".", 1)[1]: value for dotted, value in vars(args).items() if dotted.startswith("data.")}
    eval_limit = overrides.pop("eval_limit", None)
    metrics = evaluate_sft(args.run_dir, overrides, args.split, eval_limit)
    out = RunDir(Path(args.run_dir)).eval_file(args.split)
    atomic_write_json(out, {args.split: metrics})
    print(metrics_table({args.split: metrics}, "seq") + f"\nirregular outputs: {metrics['irregular']}")
    print(f"written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lsllm.compare import compare_runs

    print(compare_runs(args.run_dirs))
    return 0


def _progress(desc: str) -> Callable | None:
    if not sys.stderr.isatty() and os.environ.get("LSLLM_PROGRESS") != "1":
        return None
    from tqdm.auto import tqdm

    return lambda items: tqdm(items, desc=desc, leave=False)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from lsllm import __version__

    parser = argparse.ArgumentParser(prog="lsllm", description="Label-supervised finetuning of decoder LLMs for classification.")
    parser.add_argument("--version", action="version", version=f"lsllm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a label-supervised classifier (LS-LLM / LS-unLLM)")
    train.add_argument("--config", help="YAML with sections model/lora/data/train (e.g. a run's config.yaml)")
    add_config_flags(train)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a trained run on a split")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    add_config_flags(evaluate, ["data"], skip={"train-limit", "labels", "max-length", "label-all-subtokens", "task", "split-seed"})
    add_threads_flag(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    predict = commands.add_parser("predict", help="predict labels (seq) or entities (token) for texts")
    predict.add_argument("run_dir")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--input", help="a .txt file (one text per line) or .jsonl ({\"text\"} or {\"tokens\"})")
    predict.add_argument("--output-file", help="write JSONL records here instead of stdout")
    add_threads_flag(predict)
    predict.set_defaults(handler=cmd_predict)

    merge = commands.add_parser("merge", help="fold LoRA into the base and write a standalone HF model")
    merge.add_argument("run_dir")
    merge.add_argument("out_dir")
    merge.set_defaults(handler=cmd_merge)

    datasets = commands.add_parser("datasets", help="list the built-in datasets and whether they are available offline")
    datasets.add_argument("--data-dir", default=None, help="folder laid out like ../shared/data (env LSLLM_DATA_DIR)")
    datasets.set_defaults(handler=cmd_datasets)

    sft = commands.add_parser("sft", help="the instruction-tuning baseline: SFT a chat model to generate the label")
    sft_commands = sft.add_subparsers(dest="sft_command", required=True)
    sft_train = sft_commands.add_parser("train", help="SFT with TRL (LoRA, or QLoRA on CUDA)")
    sft_train.add_argument("--config", help="YAML with sections model/lora/data/train/sft")
    add_config_flags(sft_train, SFT_SECTIONS, classes=_sft_classes(),
                     skip={"bidirectional", "unmask-layers", "pooling", "class-weights", "early-stopping", "eval-steps", "preset", "pack"})
    sft_train.set_defaults(handler=cmd_sft_train)
    sft_eval = sft_commands.add_parser("eval", help="evaluate an SFT run by generation (accuracy, F1, irregular outputs)")
    sft_eval.add_argument("run_dir")
    sft_eval.add_argument("--split", default="test", choices=["train", "validation", "test"])
    add_config_flags(sft_eval, ["data"], skip={"train-limit", "labels", "max-length", "label-all-subtokens", "task", "split-seed"})
    add_threads_flag(sft_eval)
    sft_eval.set_defaults(handler=cmd_sft_eval)

    compare = commands.add_parser("compare", help="one table of runs' metrics (LS, unLS, SFT); seeds as mean ± std")
    compare.add_argument("run_dirs", nargs="+")
    compare.set_defaults(handler=cmd_compare)

    from lsllm.serve import cli as serve_cli

    serve_cli.register(commands)
    return parser


SFT_SECTIONS = ("model", "lora", "data", "train", "sft")
THREADED_COMMANDS = ("train", "eval", "predict", "serve", "sft")
"""Commands that compute with torch: `--threads N` applies, and without it a busy machine is warned about."""


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: one per core; fewer when other processes share the cores)")


def _yaml_threads(cfg) -> None:
    """`threads` from a --config YAML (a --threads flag was already applied by main)."""
    if cfg.train.threads is not None:
        from lsllm.hardware import configure_threads

        configure_threads(cfg.train.threads)


def _sft_classes() -> dict[str, type]:
    from lsllm.sft.config import SFTConfig

    return {**SECTIONS, "sft": SFTConfig}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # transformers' load reports ("score.weight MISSING" for a new head) are expected here
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.command in THREADED_COMMANDS:
            from lsllm.hardware import configure_threads

            threads = getattr(args, "threads", None)
            configure_threads(getattr(args, "train.threads", None) if threads is None else threads)
        return args.handler(args)
    except LsllmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
