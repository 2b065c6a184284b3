"""The SFT baseline's speed, as ratios measured in one process: evaluation and training.

    python bench/sft_speed.py                                   # 128 eval sentences, 64 training examples
    taskset -c 0 env OMP_NUM_THREADS=1 python bench/sft_speed.py --threads 1
    python bench/sft_speed.py --eval-examples 32 --train-examples 32 --repeats 1    # a quick look

What it measures, on real SmolLM2-135M-Instruct and real SST-2 (`bench/_common.py`):

1. Training, one warm epoch each on the same `--train-examples` training sentences (batch 16,
   LoRA r=12 on q/v as in bench/throughput.py, inputs cut to 64 tokens): SFT through lsllm's
   own TRL wiring (`lsllm.sft.training.build_trainer`: prompt-completion rows, completion-only
   loss, padding-free rows attending per example, only answer positions through the LM head),
   the same with TRL's `SFTTrainer` as it comes (`--skip-stock` leaves it out), and LS through
   bench/_lsllm.py (lsllm's LS fast path). Real tokens/s = tokens the model reads (SFT: prompt + answer; LS: the sentence) over
   the time of the second epoch (the first warms up). SFT reads ~4x more tokens per example.
2. Evaluation with the SFT-trained model (LoRA merged), on `--eval-examples` validation sentences:
   - before: `reference_answers`, plain `model.generate` on 32 left-padded prompts, 8 new tokens
     (the implementation up to this benchmark);
   - after (8): `generate_answers` with the same 8-token budget (answers must be identical);
   - after: `generate_answers` as `lsllm sft eval` runs it (budget from the longest label);
   - likelihood: `label_log_likelihoods` (`--scoring likelihood`), answer tokenization included.
   Repeats alternate the order; ratios are medians of the per-repeat ratios.

Times are wall-clock and process CPU time; on a shared machine the CPU-time ratios are the
steadier ones (other processes on the same core stretch wall time, not CPU time). Writes
bench/results/sft_speed.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import DEFAULT_DATA_DIR, cpu_info, load_task, resolve_model_dir, spread_sample, write_json_atomic  # noqa: E402

MAX_LENGTH = 64
BATCH_SIZE = 16


class Clock:
    """Wall and process CPU seconds between start() and stop()."""

    def start(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> dict:
        return {"wall_s": time.perf_counter() - self.wall, "cpu_s": time.process_time() - self.cpu}


def rates(n: float, clock: dict) -> dict:
    return {**{k: round(v, 2) for k, v in clock.items()}, "per_s_wall": n / clock["wall_s"], "per_s_cpu": n / clock["cpu_s"]}


def train_sft(model_dir: Path, examples: list, labels: list[str], out: Path, pack: bool,
              stock: bool = False) -> tuple[dict, object, object]:
    """Two epochs of SFT with lsllm's TRL trainer (`stock`: TRL's SFTTrainer as it comes, same settings);
    the second epoch is timed. Returns timing, the trained model (LoRA merged) and the tokenizer."""
    import torch
    from _stock import LEARNING_RATE, LORA
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from lsllm.config import DataConfig, LoraSettings, ModelConfig, TrainConfig
    from lsllm.data import SeqExample
    from lsllm.runs import RunDir
    from lsllm.sft.config import SFTConfig, SFTRunConfig
    from lsllm.sft.evaluation import build_template
    from lsllm.sft.loading import load_base_model
    from lsllm.sft.training import build_train_dataset, build_trainer, lora_config, trl_config

    cfg = SFTRunConfig(
        model=ModelConfig(name=str(model_dir)),
        lora=LoraSettings(r=LORA["r"], alpha=LORA["lora_alpha"], dropout=LORA["lora_dropout"],
                          target_modules=list(LORA["target_modules"])),
        data=DataConfig(data="sst2", max_length=MAX_LENGTH),
        train=TrainConfig(epochs=2, batch_size=BATCH_SIZE, lr=LEARNING_RATE, weight_decay=0.0, pack=pack,
                          output=str(out)),
        sft=SFTConfig(),
    )
    torch.manual_seed(0)
    model, tokenizer, _ = load_base_model(cfg.model)
    template = build_template(cfg.sft, tokenizer, labels)
    dataset, _ = build_train_dataset(template, [SeqExample(e.text, e.label) for e in examples], MAX_LENGTH)
    steps_per_epoch = -(-len(examples) // BATCH_SIZE)
    marks: dict[str, dict] = {}

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == steps_per_epoch:  # the second epoch's first step
                marks["clock"] = Clock().start()  # type: ignore[assignment]

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2 * steps_per_epoch:
                marks["epoch2"] = marks["clock"].stop()  # type: ignore[attr-defined]

    run = RunDir(out)
    if stock:
        args = trl_config(cfg, run, len(dataset), bf16=next(model.parameters()).dtype == torch.bfloat16)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora_config(cfg), callbacks=[Timer()])
    else:
        trainer = build_trainer(cfg, model, tokenizer, dataset, run)
        trainer.add_callback(Timer())
    trainer.train()
    real = sum(len(ids) for ids in trainer.train_dataset["input_ids"])  # per epoch: prompt + completion
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(min(BATCH_SIZE, len(dataset)))])
    result = {"trainer": "trl.SFTTrainer" if stock else "lsllm.sft.training.build_trainer",
              "examples": len(examples), "real_tokens": real, "steps": steps_per_epoch, "pack": pack,
              "attention": trainer.model.config._attn_implementation,
              "batch_keys": sorted(batch), "batch_shape": list(batch["input_ids"].shape),
              "dtype": str(next(trainer.model.parameters()).dtype).replace("torch.", ""),
              **rates(real, marks["epoch2"])}
    merged = trainer.model.merge_and_unload().eval()
    return result, merged, tokenizer


def train_ls(model_dir: Path, examples: list, labels: list[str]) -> dict:
    """Two epochs of LS training on bench/_lsllm.py's path; the second is timed."""
    from _lsllm import LsllmPath

    from lsllm.hardware import fast_dtype

    path = LsllmPath(model_dir, "seq", labels, str(fast_dtype()).replace("torch.", ""), "cpu", seed=0)
    path.train(examples)
    clock = Clock().start()
    out = path.train(examples)
    timing = clock.stop()
    return {"examples": len(examples), "real_tokens": out["real_tokens"], "steps": out["steps"],
            "dtype": path.compute_dtype, **rates(out["real_tokens"], timing)}


def evaluate(model, tokenizer, examples: list, labels: list[str], repeats: int) -> dict:
    from lsllm.sft.answers import AnswerParser
    from lsllm.sft.config import SFTConfig
    from lsllm.sft.evaluation import answer_budget, build_template
    from lsllm.sft.generation import generate_answers, reference_answers, stop_token_ids
    from lsllm.sft.likelihood import label_log_likelihoods
    from lsllm.sft.templates import truncate_input

    template = build_template(SFTConfig(), tokenizer, labels)
    texts = [truncate_input(tokenizer, e.text, MAX_LENGTH)[0] for e in examples]
    prompts = [template.prompt_ids(t) for t in texts]
    stops = stop_token_ids(model, tokenizer)
    budget = answer_budget(template, labels, stops)
    parser = AnswerParser(labels)
    gold = [e.label for e in examples]

    def likelihood():
        answers = [[template.answer_ids(t, label, stops) for label in labels] for t in texts]
        scores = label_log_likelihoods(model, prompts, answers)
        return [labels[int(k)] for k in scores.argmax(1)]

    paths = {
        "before": lambda: reference_answers(model, tokenizer, prompts, 8, 32),
        "after_8_tokens": lambda: generate_answers(model, tokenizer, prompts, 8),
        "after": lambda: generate_answers(model, tokenizer, prompts, budget),
        "likelihood": likelihood,
    }
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    outputs: dict[str, list] = {}
    for repeat in range(repeats):
        for name in (paths if repeat % 2 == 0 else reversed(list(paths))):
            clock = Clock().start()
            outputs[name] = paths[name]()
            runs[name].append(rates(len(prompts), clock.stop()))
            print(f"  repeat {repeat + 1} {name}: {runs[name][-1]['per_s_cpu']:.2f} ex/s (CPU), "
                  f"{runs[name][-1]['per_s_wall']:.2f} ex/s (wall)", flush=True)

    def ratio(a: str, b: str, kind: str) -> float:
        return statistics.median(x[f"per_s_{kind}"] / y[f"per_s_{kind}"] for x, y in zip(runs[a], runs[b], strict=True))

    def scored(predictions: list) -> dict:
        return {"accuracy": sum(p == g for p, g in zip(predictions, gold, strict=True)) / len(gold),
                "irregular": sum(p is None for p in predictions)}

    same = sum(a == b for a, b in zip(outputs["before"], outputs["after_8_tokens"], strict=True))
    return {
        "examples": len(prompts),
        "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
        "max_new_tokens_after": budget,
        "runs": runs,
        "identical_answers_before_vs_after_8_tokens": f"{same}/{len(prompts)}",
        "scores": {
            "before": scored([parser.parse(a) for a in outputs["before"]]),
            "after": scored([parser.parse(a) for a in outputs["after"]]),
            "likelihood": scored(outputs["likelihood"]),
        },
        "ratios_cpu": {"after_vs_before": ratio("after", "before", "cpu"),
                       "after_8_tokens_vs_before": ratio("after_8_tokens", "before", "cpu"),
                       "likelihood_vs_after": ratio("likelihood", "after", "cpu"),
                       "likelihood_vs_before": ratio("likelihood", "before", "cpu")},
        "ratios_wall": {"after_vs_before": ratio("after", "before", "wall"),
                        "likelihood_vs_after": ratio("likelihood", "after", "wall")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--eval-examples", type=int, default=128)
    parser.add_argument("--train-examples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--no-pack", action="store_true", help="train SFT on padded batches instead of padding-free ones")
    parser.add_argument("--skip-stock", action="store_true", help="do not time TRL's SFTTrainer as it comes")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sft_speed.json")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = resolve_model_dir(args.model)
    task = load_task("sst2", args.data_dir)
    train_examples = spread_sample(task.train, args.train_examples)
    eval_examples = spread_sample(task.validation, args.eval_examples)
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),  # docs/tables.py shows it with the figures
              "machine": cpu_info(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "model": args.model, "load_avg_1min_start": os.getloadavg()[0],
              "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}

    print(f"training: SFT (TRL as it comes, then lsllm's), then LS, {len(train_examples)} examples, "
          "2 epochs each (the second timed)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        stock = None
        if not args.skip_stock:
            stock, stock_model, _ = train_sft(model_dir, train_examples, task.labels, Path(tmp) / "stock",
                                              pack=not args.no_pack, stock=True)
            del stock_model
        sft, model, tokenizer = train_sft(model_dir, train_examples, task.labels, Path(tmp) / "sft", pack=not args.no_pack)
    ls = train_ls(model_dir, train_examples, task.labels)
    record["training"] = {"sft_trl_stock": stock, "sft": sft, "ls": ls,
                          "sft_vs_ls_tokens_per_s_cpu": sft["per_s_cpu"] / ls["per_s_cpu"],
                          "sft_vs_ls_tokens_per_s_wall": sft["per_s_wall"] / ls["per_s_wall"]}
    if stock:
        record["training"]["sft_vs_trl_stock_cpu"] = sft["per_s_cpu"] / stock["per_s_cpu"]
    for name, r in (("SFT, TRL as it comes", stock), ("SFT, lsllm", sft), ("LS, lsllm", ls)):
        if r:
            print(f"  {name}: {r['per_s_cpu']:.0f} real tokens/s (CPU time), {r['per_s_wall']:.0f} (wall)", flush=True)

    print(f"evaluation: {len(eval_examples)} validation sentences, {args.repeats} repeats", flush=True)
    record["evaluation"] = evaluate(model, tokenizer, eval_examples, task.labels, args.repeats)
    record["load_avg_1min_end"] = os.getloadavg()[0]
    write_json_atomic(args.out, record)

    ev = record["evaluation"]
    print(f"\ngeneration after/before: {ev['ratios_cpu']['after_vs_before']:.2f}x (CPU time), "
          f"{ev['ratios_wall']['after_vs_before']:.2f}x (wall); answers identical at 8 tokens: "
          f"{ev['identical_answers_before_vs_after_8_tokens']}")
    print(f"likelihood vs generation after: {ev['ratios_cpu']['likelihood_vs_after']:.2f}x (CPU time)")
    print(f"SFT vs LS training tokens/s: {record['training']['sft_vs_ls_tokens_per_s_cpu']:.2f}x (CPU time)"
          + (f"; lsllm's SFT vs TRL as it comes: {record['training']['sft_vs_trl_stock_cpu']:.2f}x" if stock else ""))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
