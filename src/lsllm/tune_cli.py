"""`lsllm tune`: the command line of the recipe search (lsllm.tune).

    lsllm tune --data sst2 --data-dir ../shared/data --prompt 'Review: {text}\\nSentiment:' --budget 2h
    lsllm tune --data conll03 --data-dir ../shared/data --budget 90m --subset 2000 --pruner halving
    lsllm tune --output tunes/sst2 --resume --budget 30m          # a killed tune continues

Every flag of `lsllm train` is taken and given to each trial (except --output and --resume,
which are the tune's own). Nothing here imports optuna or torch until the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lsllm.errors import ConfigError
from lsllm.flags import add_config_flags, given_flags
from lsllm.runs import COMMAND

DESCRIPTION = ("Search the recipe (learning rates, LoRA rank/alpha/targets/dropout, epochs, attention, pooling, head "
               "init) for your data inside a time budget. Every trial is an ordinary run folder (DIR/trial-NNNN), "
               "selected on validation only; the best trial's test score is reported once. Every other flag is a flag "
               "of `lsllm train`, given to each trial. See docs/tune.md.")
EPILOG = ("examples:\n"
          "  lsllm tune --data sst2 --data-dir ../shared/data --prompt 'Review: {text}\\nSentiment:' --budget 2h\n"
          "  lsllm tune --data my.tsv --budget 30m --trials 20 --space space.yaml --output tunes/mine\n"
          "  lsllm tune --output tunes/mine --resume --budget 30m\n"
          "  lsllm tune --data my.tsv --trials 40 --storage postgresql://me@db-host/tunes --study-name mine --resume \\\n"
          "      --output tunes/mine          # the same command on every machine: workers sharing one study\n"
          "  lsllm train --config tunes/mine/best.yaml --output runs/best")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune` command to the `lsllm` parser's subcommands."""
    tune = subparsers.add_parser("tune", help="search the training recipe for your data inside a time budget (Optuna)",
                                 description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    tune.add_argument("--config", help="YAML with sections model/lora/data/train: the settings every trial starts from")
    add_config_flags(tune, ["data", "model", "train", "lora"], skip={"output", "resume"})
    group = tune.add_argument_group("tune")
    group.add_argument("--budget", help="wall-clock for the search: 30m, 2h, 1h30m, 5400s; no trial starts when the time "
                       "left is under the mean trial time (the first always runs)")
    group.add_argument("--trials", type=int, default=None,
                       help="stop when the study holds N trials (earlier ones and other processes' count)")
    group.add_argument("--output", default=None, help="the tune folder (default tunes/<data>)")
    group.add_argument("--storage", default=None, help="Optuna storage URL for a study shared by workers on several "
                       "machines, e.g. postgresql://USER@HOST:5432/DB (pip install 'lsllm[postgres]'; put the password in "
                       "~/.pgpass or PGPASSWORD, not here) (default sqlite:///OUTPUT/tune.db)")
    group.add_argument("--study-name", default=None, help="the study's name in the storage (default: the folder's name)")
    group.add_argument("--heartbeat", type=int, default=None, metavar="SECONDS",
                       help="a running trial's worker records a heartbeat this often (default 60); a trial silent for 3 "
                            "heartbeats (its worker killed) is failed by another worker and the search goes on")
    group.add_argument("--resume", action="store_true",
                       help="continue the tune in --output (or join it from another process)")
    group.add_argument("--space", default=None, help="YAML search space replacing the default: "
                       "name: {type: float|int|categorical, low, high, log, choices}")
    group.add_argument("--fixed", nargs="+", default=None, metavar="DIM",
                       help="default dimensions not searched: lr head_lr_ratio lora_r lora_alpha_ratio lora_targets "
                            "lora_dropout epochs attention pooling head_init")
    group.add_argument("--pruner", choices=["median", "halving", "none"], default=None,
                       help="stop bad trials early at their validation evaluations: median (the default), halving "
                            "(successive halving), none (every trial runs to its end); --resume keeps the tune's")
    group.add_argument("--subset", type=int, default=None,
                       help="train each trial on the first N training examples (--train-limit N): a cheaper search")
    tune.set_defaults(handler=cmd_tune)


def masked_command(command: list[str] | None, url: str, shown: str) -> list[str] | None:
    """The command line with the --storage URL shown without its password."""
    if command is None:
        return None
    return [shown if part == url else f"--storage={shown}" if part == f"--storage={url}" else part for part in command]


def _progress(line: str) -> None:
    sys.stderr.write(f"[tune] {line}\n")
    sys.stderr.flush()


def cmd_tune(args: argparse.Namespace) -> int:
    from lsllm import tune

    budget = tune.parse_budget(args.budget) if args.budget is not None else None  # a bad budget: before any work
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if budget is None and args.trials is None:
        raise ConfigError("give --budget (e.g. 2h) and/or --trials N: a tune needs an end")
    if args.resume and args.output is None:
        raise ConfigError("--resume needs --output: the tune folder to continue")
    if args.storage is not None:  # trials' run.json records the command line: never with the password in it
        COMMAND.set(masked_command(COMMAND.get(), args.storage, tune.shown_storage(args.storage)))
    given = given_flags(args)  # saved in the tune as typed; the config is read from the parsed flags themselves
    joining = args.resume and not given and args.space is None and args.subset is None and not args.fixed
    spec = None if joining else tune.new_spec(given, space_file=args.space, subset=args.subset, fixed=args.fixed or (),
                                              given=tune.Given.of_args(args))
    data = getattr(args, "data.data", None)
    output = Path(args.output or f"tunes/{Path(data or 'tune').name}")
    result = tune.tune(output, spec, budget=budget, trials=args.trials, storage=args.storage, study_name=args.study_name,
                       resume=args.resume, pruner=args.pruner, progress=_progress,
                       heartbeat=tune.HEARTBEAT_S if args.heartbeat is None else args.heartbeat)
    best = result.get("best")
    metric = result.get("metric")
    if best:
        sys.stdout.write(f"best: {best['run']}  validation {metric} {tune._value(best['validation'], metric)}  "
                         f"test {metric} {tune._value(best['test'], metric)}  (test reported once, never used to select)\n")
        sys.stdout.write(f"train it again: lsllm train --config {output / tune.BEST_YAML} --output NEW_DIR\n")
    else:
        sys.stdout.write("no trial completed: see tune.md\n")
    sys.stdout.write(f"tune written to {output} (tune.json, tune.md, best.yaml, history.png, report.html)\n")
    return 0 if best else 1
