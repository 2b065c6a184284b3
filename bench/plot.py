"""Bar chart of a throughput run: real tokens/s per task, mode and path, with MFU* on each bar.

    python bench/plot.py                                   # bench/results/throughput.json -> docs/img/throughput.png
    python bench/plot.py --json other.json --out fig.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATHS = ("reference", "tuned", "lsllm")
COLORS = {"reference": "#9e9e9e", "tuned": "#64b5f6", "lsllm": "#1565c0"}


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(task, mode) for task in result["tasks"] for mode in ("train", "infer") if task in result["results"]]
    paths = [p for p in PATHS if p in result["paths"]]
    width = 0.8 / len(paths)
    fig, ax = plt.subplots(figsize=(1.9 * len(groups) + 1.5, 4.2))
    for i, path in enumerate(paths):
        for g, (task, mode) in enumerate(groups):
            figures = result["results"][task].get(path, {}).get(mode)
            if not figures or figures["tokens_per_s"] is None:
                continue
            x = g + (i - (len(paths) - 1) / 2) * width
            ax.bar(x, figures["tokens_per_s"], width, color=COLORS[path], label=path if g == 0 else None)
            ax.annotate(f"{figures['tokens_per_s']:.0f}\n{100 * figures['mfu_vs_best_peak']:.0f}%", (x, figures["tokens_per_s"]),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(groups)), [f"{task}\n{mode}" for task, mode in groups])
    ax.set_ylabel("real (non-pad) tokens/s")
    ax.margins(y=0.18)
    cpu = result["machine"]["cpu"]
    ax.set_title(f"SmolLM2-135M, LoRA r=12 q/v; {cpu['model']}, {cpu['logical_cpus']} CPUs "
                 f"({result['date'][:10]}); labels: tokens/s, MFU*", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=HERE / "results" / "throughput.json")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img" / "throughput.png")
    args = p.parse_args(argv)
    plot(json.loads(args.json.read_text()), args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
