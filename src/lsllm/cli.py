"""The `lsllm` command line: a thin layer over the library.

    lsllm train   --data sst2 --data-dir ../shared/data --preset ls-llama --epochs 1
    lsllm train   --data conll03 --data-dir ../shared/data --bidirectional --train-limit 2000
    lsllm eval    runs/sst2-... --split test
    lsllm predict runs/conll03-... "EU rejects German call to boycott British lamb ."
    lsllm merge   runs/sst2-... merged/
    lsllm datasets
    lsllm sft train --data sst2 --train-limit 1000 ; lsllm sft eval RUN ; lsllm compare RUN RUN ...
    lsllm serve   runs/sst2-...
    lsllm report  runs/sst2-... [RUN ...] [--output report.html]

Training flags are generated from the config dataclasses (config.py), so every setting has one
name in YAML and on the command line. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsllm.config import DataConfig
from lsllm.errors import ConfigError, LsllmError
from lsllm.flags import add_config_flags, config_from_args
from lsllm.inference.settings import InferenceSettings, add_inference_flags

# ---------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from lsllm.training import train

    cfg, explicit = config_from_args(args)
    if not cfg.data.data and not cfg.train.resume:
        raise ConfigError("--data is required: a built-in name (lsllm datasets), a folder or a file")
    from lsllm.runs import is_main_process

    say = None if getattr(args, "quiet", False) or not is_main_process() else lambda line: print(line, file=sys.stderr)
    run = train(cfg, explicit, announce=say)  # the recipe chosen from the data, in one line, before training
    if is_main_process():  # under torchrun only rank 0 writes and reports the run
        _print_results(run)
    return 0


def _print_results(run: Path) -> None:
    from lsllm.run_outputs import metrics_table
    from lsllm.runs import RunDir

    results = {split: m for split, m in RunDir(run).read_metrics().items() if split in ("validation", "test")}
    data = RunDir(run).read_config().get("data") or {}
    print(metrics_table(results, data.get("task") or "seq", data.get("problem")))
    print(f"\nrun written to {run}")
    print(next_steps(RunDir(run)))


def next_steps(run) -> str:
    """What a user tries next with a finished run, its own path filled in."""
    import shlex

    from lsllm.runs import peek_info

    info = peek_info(run.root)
    root = shlex.quote(str(run.root))
    example = example_input(run)
    if info is not None and info.fields:
        fields = example if isinstance(example, dict) else {name: "..." for name in info.fields}
        first = f"  lsllm predict {root} --input inputs.jsonl        # one {json.dumps(fields, ensure_ascii=False)} per line"
    elif isinstance(example, str):
        first = f"  lsllm predict {root} {shlex.quote(example)}"
    else:  # no predictions file to take an input from
        first = f"  lsllm predict {root} \"some text\"                  # or --input texts.txt"
    lines = [f"report: {run.html}" if run.html.is_file() else "", "next:", first,
             f"  lsllm serve {root}                                 # API + try-it page on http://127.0.0.1:8000",
             f"  lsllm report {root} RUN2 ...                       # compare runs on one page"]
    return "\n".join(line for line in lines if line)


def example_input(run, scan: int = 200) -> str | dict[str, str] | None:
    """An input from the run's own data for the next-steps lines: a short one of its predictions file (test, else validation).

    A pair run gets its fields; a token run its words joined by spaces; None when the file is
    missing or holds no text. Short means the fewest words among the first ``scan`` records
    with at least four (a one-word input says little), so the line fits a terminal.
    """
    from lsllm.runs import read_jsonl_noting

    candidates = []
    for record in read_jsonl_noting(run.predictions, [], "")[:scan]:
        fields = record.get("fields")
        if isinstance(fields, dict) and fields and all(isinstance(v, str) for v in fields.values()):
            value: str | dict[str, str] = {str(k): v for k, v in fields.items()}
            text = " ".join(fields.values())
        elif isinstance(record.get("tokens"), list) and all(isinstance(t, str) for t in record["tokens"]):
            value = text = " ".join(record["tokens"])
        elif isinstance(record.get("text"), str):
            value = text = record["text"]
        else:
            continue
        words = len(text.split())
        if words:
            candidates.append((words < 4, words, len(candidates), value))
    return min(candidates, key=lambda c: c[:3])[3] if candidates else None


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {dotted.split(".", 1)[1]: value for dotted, value in vars(args).items() if dotted.startswith("data.")}


def cmd_eval(args: argparse.Namespace) -> int:
    from lsllm.inference.backends import open_classifier
    from lsllm.pipeline import evaluate_run
    from lsllm.run_outputs import metrics_table
    from lsllm.runs import RunDir, is_export_dir

    inference = InferenceSettings.from_args(args)  # a bad value: one line before any work
    if is_export_dir(args.run_dir):
        raise ConfigError(f"{args.run_dir} is an `lsllm export` folder; lsllm eval reads the run's data settings: "
                          "give the run with --backend onnx [--int8]")
    opened = open_classifier(args.run_dir, inference)  # applies --threads
    metrics, data_cfg = evaluate_run(args.run_dir, args.split, _data_overrides(args), progress=_progress("evaluating"),
                                     classifier=opened.classifier)
    backend = opened.classifier.backend
    tag = "" if backend == "torch" else "-" + backend.replace("onnxruntime ", "onnx-")  # eval-test-onnx-int8.json
    out = RunDir(Path(args.run_dir)).write_eval(args.split + tag, {args.split: metrics, "data": data_cfg.data,
                                                                    "backend": backend})
    print(metrics_table({args.split: metrics}, data_cfg.task or "seq", data_cfg.problem))
    print(f"written to {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Texts given as arguments, or an --input file of any size streamed a chunk at a time (lsllm.batch_predict)."""
    from lsllm import batch_predict
    from lsllm.inference.backends import open_classifier
    from lsllm.problems import family
    from lsllm.progress import Meter
    from lsllm.record_files import open_records, record_schema
    from lsllm.runs import peek_info

    inference = InferenceSettings.from_args(args)  # a bad value: one line before any work
    if not args.texts and not args.input:
        raise ConfigError("give texts as arguments or --input FILE (.txt one per line, .jsonl, .csv/.tsv, .parquet)")
    output = Path(args.output_file) if args.output_file else None
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        what = "is a folder" if output.is_dir() else "is in a folder that does not exist"
        raise ConfigError(f"--output-file {output} {what}; name a file in an existing folder")
    shard = batch_predict.resolve_shard(args.shard)
    flag = "--resume" if args.resume else f"--shard {shard}" if args.shard else "torchrun (WORLD_SIZE > 1)"
    if args.texts and (args.resume or shard):
        raise ConfigError(f"{flag} applies to --input FILE, not to texts given as arguments; put them in a file")
    if args.texts and args.input and output is not None:
        raise ConfigError("texts given as arguments and --input FILE go to stdout together; with --output-file give "
                          "one of them (put the texts in the file)")
    if (args.resume or shard) and output is None:
        raise ConfigError(f"{flag} writes to a file: give --output-file OUT (.jsonl or .parquet)")
    if args.chunk_size is not None and not args.input:
        raise ConfigError("--chunk-size applies to --input FILE")
    info = peek_info(args.run_dir) if args.input else None
    fields = info.fields if info is not None else None  # a pair run reads records; a bad run fails at load
    problem = family(info.task, info.problem) if info is not None else None
    job = source = None
    if args.input:  # a bad file, or an output that cannot be written or resumed, fails before the model loads
        source = batch_predict.survey(args.input, fields, problem)
        if output is not None:
            job = batch_predict.plan(source, output, args.run_dir, shard, args.chunk_size, args.resume)
    elif output is not None and open_records(output).present():
        raise ConfigError(f"--output-file {output} exists; choose another --output-file (or delete it)")
    opened = open_classifier(args.run_dir, inference)  # applies --threads
    classifier = opened.classifier
    if source is not None:
        source.check_problem(classifier.problem)
    if args.texts:
        records = classifier.predict_texts(args.texts, progress=_progress("predicting"))
        if output is None:
            _print_records(records)
        else:
            schema = record_schema(classifier.problem, classifier.labels, classifier.fields)
            writer = open_records(output, schema if output.suffix.lower() == ".parquet" else None)
            writer.append(records)
            writer.finish()
            print(f"{len(records)} predictions written to {output}", file=sys.stderr)
    if source is None:
        return 0

    def meter(total: int, initial: int) -> Meter:
        return Meter("predicting", total, initial)

    if job is None:  # records on stdout, a chunk at a time
        batch_predict.stream_to(_print_records, source.path, classifier, fields, source.inputs,
                                args.chunk_size or batch_predict.CHUNK_SIZE, meter)
        return 0
    written, kept = batch_predict.run_job(job, classifier, fields, meter)
    where = f" (shard {job.shard}: {job.total:,} of the {source.inputs:,} inputs, from input {job.start:,})" if job.shard else ""
    again = f"; {kept:,} of them were there from before (--resume)" if kept else ""
    print(f"{written} predictions written to {job.output}{where}{again}", file=sys.stderr)
    return 0


def _print_records(records: list[dict]) -> None:
    sys.stdout.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    sys.stdout.flush()


def cmd_merge(args: argparse.Namespace) -> int:
    from lsllm.pipeline import load_run

    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; merge writes a folder: choose a new folder")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder")
    classifier, _ = load_run(args.run_dir, dtype="float32", device="cpu")
    classifier.model.save_pretrained(out)
    classifier.tokenizer.save_pretrained(out)
    print(f"merged model written to {out} (load with transformers.{classifier.problem.hf_auto_class} or lsllm)")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from lsllm.data import REGISTRY
    from lsllm.data.loading import data_dir
    from lsllm.problems import family

    folder = data_dir(DataConfig(data="", data_dir=args.data_dir))
    print(f"{'name':<16}{'task':<18}{'offline':<34}labels")
    for name, spec in REGISTRY.items():
        shown = spec.labels if len(spec.labels) <= 20 else (*spec.labels[:6], f"... ({len(spec.labels)} in all)")
        member = family(spec.task, spec.problem)
        labels = ", ".join(shown) + member.labels_note
        print(f"{name:<16}{member.kind:<18}{_offline_status(spec.resource, folder, name, bool(spec.hub)):<34}{labels}")
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in REGISTRY) if folder and folder.is_dir() else []
    for name in extra:
        print(f"{name:<16}{'?':<18}{_offline_status(None, folder, name, False):<34}(from the folder's files)")
    if folder is None:
        print("\n(no data folder: pass --data-dir DIR or set LSLLM_DATA_DIR to use local copies; otherwise the hub is tried)")
    return 0


def _offline_status(resource: str | None, folder: Path | None, name: str, on_hub: bool) -> str:
    if resource:
        return "yes (bundled)"
    splits = sorted(p.stem for p in (folder / name).glob("*.*") if p.stem in ("train", "validation", "dev", "test")) if folder else []
    return f"yes: {', '.join(splits)}" if splits else ("no (hub only)" if on_hub else "no (needs --data-dir)")


def cmd_sft_train(args: argparse.Namespace) -> int:
    from lsllm.sft.training import train_sft

    cfg, _ = config_from_args(args, "sft")
    if not cfg.data.data and not cfg.train.resume:
        raise ConfigError("--data is required: a built-in name (lsllm datasets), a folder or a file")
    run = train_sft(cfg)
    from lsllm.runs import is_main_process

    if is_main_process():  # under torchrun only rank 0 writes and reports the run
        _print_results(run)
    return 0


def cmd_sft_eval(args: argparse.Namespace) -> int:
    from lsllm.hardware import configure_threads
    from lsllm.run_outputs import metrics_table
    from lsllm.runs import RunDir
    from lsllm.sft.evaluation import evaluate_sft

    configure_threads(InferenceSettings.from_args(args).threads)  # eval, predict, serve: open_classifier applies them
    overrides = _data_overrides(args)
    eval_limit = overrides.pop("eval_limit", None)
    sft_overrides = {dotted.split(".", 1)[1]: value for dotted, value in vars(args).items() if dotted.startswith("sft.")}
    metrics = evaluate_sft(args.run_dir, overrides, args.split, eval_limit, sft_overrides=sft_overrides,
                           show_progress=_progress("generating") is not None)
    out = RunDir(Path(args.run_dir)).write_eval(args.split, {args.split: metrics})
    problem = (RunDir(Path(args.run_dir)).read_config().get("data") or {}).get("problem")
    print(metrics_table({args.split: metrics}, "seq", problem) + f"\nirregular outputs: {metrics['irregular']}")
    print(f"written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lsllm.compare import compare_runs

    print(compare_runs(args.run_dirs))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lsllm.report import write_report

    print(f"report written to {write_report(args.run_dirs, args.output)}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    """`lsllm study`: every size x method x seed cell, through the flags of `train` / `sft train` (lsllm.study)."""
    from lsllm import study

    output = Path(args.output or f"studies/{Path(args.data or 'study').name}")
    spec = None if args.resume else study.new_spec(args.data, args.methods, args.sizes, args.seeds, args.passthrough,
                                                    data_dir=args.data_dir)
    result = study.study(output, spec, resume=args.resume, workers=args.workers)
    print(study.study_markdown(result))
    print(f"study written to {output} (study.json, study.md, study.png)")
    return 0


def _progress(desc: str) -> Callable | None:
    from lsllm.progress import bar

    return bar(desc)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from lsllm import export_cli, record, tune_cli
    from lsllm.serve import cli as serve_cli
    from lsllm.version import __version__

    parser = argparse.ArgumentParser(
        prog="lsllm", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Label-supervised finetuning of decoder LLMs: classification (single- and multi-label, sentence "
                    "pairs), regression and NER.",
        epilog="start here:\n  lsllm train --data sst2-sample --epochs 1     # a few minutes on a laptop CPU, offline\n"
               "  lsllm <command> --help                        # each command's flags and examples")
    parser.add_argument("--version", action="version", version=f"lsllm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and third-party warnings) to stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no warnings: results and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a label-supervised classifier (LS-LLM / LS-unLLM)", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a classifier (a label head on a decoder, LoRA) and write a run folder: model, metrics on "
                    "validation and test, predictions, report.html. The flags most used: --data, --model, --epochs.",
        epilog="examples:\n"
               "  lsllm train --data sst2-sample --epochs 1\n"
               "  lsllm train --data conll03 --data-dir ../shared/data --preset lsllm\n"
               "  lsllm train --data my.tsv --text-column premise hypothesis --prompt 'P: {premise}\\nH: {hypothesis}\\nA:'\n"
               "  lsllm train --config runs/X/config.yaml --output runs/again")
    train.add_argument("--config", help="YAML with sections model/lora/data/train (e.g. a run's config.yaml)")
    add_config_flags(train, ["data", "model", "train", "lora"])
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a trained run on a split")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    add_config_flags(evaluate, ["data"], skip={"train-limit", "labels", "max-length", "label-all-subtokens", "task", "split-seed"})
    add_inference_flags(evaluate)  # --threads --dtype --backend --int8 --matmul (lsllm.inference.settings)
    evaluate.set_defaults(handler=cmd_eval)

    predict = commands.add_parser(
        "predict", help="predict labels (seq) or entities (token) for texts", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Predict with a trained run: JSONL records on stdout (or --output-file).",
        epilog='examples:\n  lsllm predict runs/X "a gripping, beautifully acted film"\n'
               "  lsllm predict runs/X --input texts.txt --output-file predictions.jsonl\n"
               "  lsllm predict runs/X --input big.parquet --output-file predictions.parquet --resume\n"
               "  lsllm predict runs/X --input big.jsonl --output-file out.jsonl --shard 0/2   # and --shard 1/2 elsewhere")
    predict.add_argument("run_dir", help="a run folder, or a folder written by `lsllm export` (run by ONNX Runtime)")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--input", help="a file of inputs, read a chunk at a time: .txt (one text per line), .jsonl "
                         "({\"text\"} or {\"tokens\"}), .csv/.tsv (a text column), .parquet, .conll")
    predict.add_argument("--output-file", help="write the records here (.parquet: Parquet; any other name: JSONL) instead "
                         "of stdout; an existing one is refused unless --resume")
    predict.add_argument("--resume", action="store_true",
                         help="continue the --output-file a killed `lsllm predict` left (same --input and run): no "
                              "record lost or repeated")
    predict.add_argument("--shard", metavar="K/N", default=None,
                         help="this process takes the K-th of N contiguous blocks of the inputs (K from 0) and writes "
                              "OUT-0000K-of-0000N.ext; under torchrun each rank takes its own without it")
    predict.add_argument("--chunk-size", type=int, default=None, metavar="N",
                         help="inputs read, sorted by length and written at a time (default 10000)")
    add_inference_flags(predict)  # --threads --dtype --backend --int8 --matmul (lsllm.inference.settings)
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
    add_config_flags(sft_train, method="sft")
    sft_train.set_defaults(handler=cmd_sft_train)
    sft_eval = sft_commands.add_parser("eval", help="evaluate an SFT run by generation or label likelihood (accuracy, F1, irregular outputs)")
    sft_eval.add_argument("run_dir")
    sft_eval.add_argument("--split", default="test", choices=["train", "validation", "test"])
    add_config_flags(sft_eval, ["data"], skip={"train-limit", "labels", "max-length", "label-all-subtokens", "task", "split-seed"})
    add_config_flags(sft_eval, ["sft"], method="sft",  # how to answer; the prompt stays the run's
                     skip={"template", "system-prompt", "gradient-checkpointing", "eval-splits"})
    add_inference_flags(sft_eval, ("threads",))  # generation runs on torch; the other settings are LS inference's
    sft_eval.set_defaults(handler=cmd_sft_eval)

    study = commands.add_parser(
        "study", help="the data-size study: each method on the same subsets, sizes x seeds (resumable)",
        description="Every other flag (--model, --epochs, --lr, ...) is passed to each cell's `lsllm train` / `lsllm sft train`.",
        allow_abbrev=False)  # --seed must reach the cells, not abbreviate --seeds
    study.add_argument("--data", help="dataset, as for lsllm train")
    study.add_argument("--data-dir", help="folder laid out like ../shared/data (env LSLLM_DATA_DIR)")
    study.add_argument("--sizes", nargs="+", type=int, default=[64, 256, 1000, 4000], help="training-set sizes")
    study.add_argument("--methods", nargs="+", default=["ls", "sft"], help="ls | unls | repeat | sft")
    study.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per size and method (subset and training)")
    study.add_argument("--output", help="study directory (default studies/<data>)")
    study.add_argument("--resume", action="store_true", help="continue the study in --output, or join the workers on it")
    study.add_argument("--workers", type=int, default=1, help="processes training cells at once, each with an equal "
                       "share of the cores (more can join: lsllm study --output DIR --resume); no cell is trained twice")
    study.set_defaults(handler=cmd_study)

    compare = commands.add_parser("compare", help="one table of runs' metrics (LS, unLS, SFT); seeds as mean ± std")
    compare.add_argument("run_dirs", nargs="+")
    compare.set_defaults(handler=cmd_compare)

    report = commands.add_parser("report", help="one self-contained HTML page: metrics, confusion, curves, errors, NER spans")
    report.add_argument("run_dirs", nargs="+", help="run, study and/or tune directories")
    report.add_argument("--output", default=None, help="the HTML file (default: RUN/report.html for one directory, "
                        "./report.html for several)")
    report.set_defaults(handler=cmd_report)

    for module in (serve_cli, export_cli, tune_cli, record):  # commands whose flags live beside their code
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    if args.command is None:  # `lsllm` alone: what it can do
        parser.print_help()
        return 0
    if passthrough and getattr(args, "handler", None) is not cmd_study:
        parser.parse_args(argv)  # the usual "unrecognized arguments" error for every other command
    args.passthrough = passthrough
    from lsllm.runs import COMMAND

    COMMAND.set(["lsllm", *(sys.argv[1:] if argv is None else argv)])
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.quiet:
        os.environ["LSLLM_PROGRESS"] = "0"
    if not args.verbose:  # transformers' load reports ("score.weight MISSING" for a new head) are expected here
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bar: ours say what runs
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # TRL's "Tokenizing train dataset" bars (SFT)
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
        if "transformers" in sys.modules:  # already imported (lsllm used as a library, tests): read at import, so tell it
            sys.modules["transformers"].utils.logging.disable_progress_bar()
        # third-party deprecation notices a user cannot act on (transformers' own, raised inside the Trainer)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.handler(args)
    except LsllmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lsllm datasets | head`: the reader left; stop quietly as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
