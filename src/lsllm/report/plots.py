"""The report's figures, drawn by matplotlib as inline SVG (vector, offline, no chart code of ours).

Text stays text in the SVG (``svg.fonttype: none``) so it is sharp at any zoom and selectable.
Each figure gets its own ``svg.hashsalt``, so the ids matplotlib writes (clip paths, markers)
cannot collide between the several figures inlined in one page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from lsllm.report.collect import Curves  # noqa: E402

STYLE = {"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 11, "axes.spines.top": False,
         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3}
SELECTED = "#d62728"


def type_colours(types: Sequence[str]) -> dict[str, str]:
    """One colour per entity type, from matplotlib's tab10 (then tab20) palette."""
    # tab10 without its orange and red: those mean "wrong type" and "missed / spurious" in the report.
    tab10 = [to_hex(c) for c in colormaps["tab10"].colors]
    palette = [c for i, c in enumerate(tab10) if i not in (1, 3)] + [to_hex(c) for c in colormaps["Dark2"].colors]
    return {t: palette[i % len(palette)] for i, t in enumerate(types)}


def heat_colour(fraction: float) -> dict[str, str]:
    """Background and text colour of a heat-map cell at ``fraction`` of the peak (matplotlib's Blues)."""
    fraction = min(max(fraction, 0.0), 1.0)
    return {"bg": to_hex(colormaps["Blues"](0.05 + 0.9 * fraction)), "fg": "#ffffff" if fraction > 0.55 else "#111111"}


def _svg(fig, salt: str) -> str:
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: it is inlined in HTML
    # Scale with the page: keep the viewBox, let CSS set the size (width 100%, height from the ratio).
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img" class="plot"', text, count=1)


def curves_svg(curves: Curves, salt: str) -> str | None:
    """Training loss (top) and the validation metric (bottom) over steps, the selected checkpoint marked."""
    if not curves.loss and not curves.validation:
        return None
    with plt.rc_context(STYLE):
        panels = [p for p in (("loss", curves.loss), (f"validation {curves.metric}", curves.validation)) if p[1]]
        fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 2.4 * len(panels)), sharex=True, squeeze=False)
        for number, (ax, (name, points)) in enumerate(zip(axes[:, 0], panels, strict=True)):
            steps, values = zip(*points, strict=True)
            if name == "loss":
                ax.plot(steps, values, color="tab:blue", linewidth=1.4, label="training loss")
                ax.set_ylabel("training loss")
            elif not curves.percent:  # a correlation: shown as the number it is, on its own scale
                ax.plot(steps, values, color="tab:orange", marker="o", markersize=4, linewidth=1.4, label=name)
                ax.set_ylabel(name)
                margin = max(0.02, 0.1 * (max(values) - min(values)))
                ax.set_ylim(min(values) - margin, max(values) + margin)
            else:
                shown = [100 * v for v in values]
                ax.plot(steps, shown, color="tab:orange", marker="o", markersize=4, linewidth=1.4, label=name)
                ax.set_ylabel(f"{name} (%)")
                margin = max(2.0, 0.1 * (max(shown) - min(shown)))  # a flat curve still gets a readable axis
                ax.set_ylim(max(0.0, min(shown) - margin), min(100.0, max(shown) + margin))
            if curves.selected_step is not None:
                label = f"selected: step {curves.selected_step}" + (f" ({curves.selected_reason})" if curves.selected_reason else "")
                ax.axvline(curves.selected_step, color=SELECTED, linestyle="--", linewidth=1.2, label=label if number == 0 else None)
            ax.legend(loc="best", fontsize=8, frameon=False)
        axes[-1, 0].set_xlabel("optimizer step")
        fig.tight_layout()
        return _svg(fig, salt)


def scatter_svg(points: Sequence[tuple[float, float]], salt: str) -> str | None:
    """Regression: predicted against gold, one dot per example, with the diagonal where they would be equal."""
    if not points:
        return None
    gold, predicted = zip(*points, strict=True)
    low, high = min(min(gold), min(predicted)), max(max(gold), max(predicted))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.8, 4.6))
        ax.plot([low, high], [low, high], color="#888888", linestyle="--", linewidth=1.0, label="predicted = gold")
        ax.scatter(gold, predicted, s=9, alpha=0.45, color="tab:blue", edgecolors="none")
        ax.set_xlabel("gold")
        ax.set_ylabel("predicted")
        ax.set_aspect("equal", adjustable="box")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        fig.tight_layout()
        return _svg(fig, salt)


def study_svg(summary: list[dict[str, Any]], metric: str, salt: str, unit: str = "%") -> str | None:
    """Mean ± std of the study metric (x100: ``unit`` "%" or "x100") over training-set sizes, one line per method."""
    rows = [r for r in summary if isinstance(r.get("mean"), (int, float)) and r.get("size") is not None]
    if not rows:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for method in methods:
            points = sorted((r["size"], 100 * r["mean"], 100 * (r.get("std") or 0.0)) for r in rows if r["method"] == method)
            sizes, means, stds = zip(*points, strict=True)
            ax.errorbar(sizes, means, yerr=stds, marker="o", markersize=4, capsize=4, linewidth=1.4, label=method)
        all_sizes = sorted({r["size"] for r in rows})
        if len(all_sizes) > 2 and all_sizes[0] > 0 and all_sizes[-1] / all_sizes[0] >= 10:
            ax.set_xscale("log")
        ax.set_xticks(all_sizes, [str(s) for s in all_sizes])
        ax.minorticks_off()
        ax.set_xlabel("training examples")
        ax.set_ylabel(f"test {metric} ({unit})")
        ax.legend(loc="best", fontsize=8, frameon=False)
        fig.tight_layout()
        return _svg(fig, salt)
