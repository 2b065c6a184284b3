"""Render runs and studies into one self-contained HTML page (Jinja2 templates in ``templates/``).

Self-contained means it opens from a file on an offline machine: the CSS and the script are
inlined, figures are inline SVG, and a Content-Security-Policy meta tag forbids the page from
loading anything at all (``default-src 'none'``), so a stray external reference fails loudly in
a browser instead of silently needing the network. Jinja2's autoescaping keeps texts from the
data (which may hold ``<script>``) as text.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from lsllm.describe import METHODS
from lsllm.problems import family
from lsllm.report import analysis, plots
from lsllm.report.collect import TUNE_PLOTS, Run, Study, Tune
from lsllm.runs import RunDir
from lsllm.version import __version__

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = analysis.percent
    env.filters["metric"] = analysis.shown  # value|metric(as_percent): the caller asks the family which are percentages
    env.filters["duration"] = analysis.duration
    env.filters["quoted"] = lambda text: json.dumps(text, ensure_ascii=False)  # shows "\n" and blanks as generated
    return env


def run_context(run: Run, number: int) -> dict[str, Any]:
    """Everything the template shows of one run; what differs by task family member comes as values the
    family gave (`per_word`, `numeric`, `label_sets`, `percent`), so the template tests no task or problem name."""
    split = run.predictions_split
    reported = run.metrics.get(split) or {}
    kind = run.family
    context: dict[str, Any] = {
        "run": run, "anchor": f"run-{number}", "facts": analysis.header_facts(run), "split": split,
        "splits": [(key, name) for key, name in (("step0", "validation before training"), ("validation", "validation"),
                                                 ("test", "test")) if isinstance(run.metrics.get(key), dict)],
        "headline": kind.headline, "percent": kind.percent, "per_word": kind.per_word, "numeric": kind.numeric,
        "label_sets": kind.label_sets, "curves_svg": plots.curves_svg(run.curves, salt=f"curves-{number}"),
        "per_class": reported.get("per_class") or reported.get("per_label"), "confusion": analysis.confusion(reported),
        "scatter_svg": plots.scatter_svg(analysis.scatter_points(run), salt=f"scatter-{number}") if kind.numeric else None,
        "per_type": reported.get("per_type"), "irregular_top": reported.get("irregular_top") or [],
    }
    if kind.per_word:
        view = analysis.ner_view(run)
        context["ner"] = view
        context["colours"] = plots.type_colours(view.types)
    else:
        errors = analysis.seq_errors(run)
        context["errors"] = errors[:analysis.MAX_REGRESSION_ERRORS if kind.numeric else analysis.MAX_ERRORS]
        context["n_errors"] = len(errors)
        context["n_predictions"] = len(run.predictions)
        context["error_classes"] = {"gold": sorted({e.gold for e in errors}), "predicted": sorted({e.predicted for e in errors})}
    return context


def study_context(study: Study, number: int, output: Path) -> dict[str, Any]:
    spec = study.spec
    metric = spec.get("metric") or "accuracy"
    cells = []
    for cell in spec.get("cells", []):
        run_dir = study.cell_run(cell)
        link = None
        if run_dir is not None:
            target = RunDir(run_dir).html if RunDir(run_dir).html.is_file() else run_dir
            link = os.path.relpath(target, output.parent)
        shown = {split: value.get(metric) if isinstance(value, dict) else value
                 for split in ("validation", "test") for value in [cell.get(split)]}
        cells.append({**cell, **shown, "link": link})
    methods = [f"{m} = {METHODS[m]}" if m in METHODS else str(m) for m in spec.get("methods", [])]
    unit = "%" if metric in family(spec.get("task"), spec.get("problem")).percent else "x100"  # as study.md says it
    return {"study": study, "anchor": f"study-{number}", "metric": metric, "unit": unit, "cells": cells, "methods": methods,
            "step0": any(isinstance(c.get("step0"), (int, float)) for c in cells),
            "summary": spec.get("summary", []), "plot_svg": plots.study_svg(spec.get("summary", []), metric, salt=f"study-{number}", unit=unit)}


def tune_context(tune: Tune, number: int, output: Path) -> dict[str, Any]:
    """A tune's settings, its best trial (test shown once) and every trial, linked to its run's report."""
    spec = tune.spec
    trials = []
    for trial in spec.get("trials", []):
        folder = tune.root / str(trial.get("run") or "")
        target = RunDir(folder).html if RunDir(folder).html.is_file() else folder
        link = os.path.relpath(target, output.parent) if trial.get("run") and folder.is_dir() else None
        trials.append({**trial, "link": link})
    metric = spec.get("metric") or "accuracy"
    return {"tune": tune, "anchor": f"tune-{number}", "metric": metric, "trials": trials,
            "percent": metric in family(spec.get("task"), spec.get("problem")).percent,
            "names": list(spec.get("space") or {}), "best": spec.get("best"),
            "plots": [name for name in TUNE_PLOTS if (tune.root / name).is_file()]}


def render(items: list[Run | Study | Tune], output: Path) -> str:
    """The whole page for these runs and studies, in the order given."""
    runs = [item for item in items if isinstance(item, Run)]
    sections = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, Run):
            sections.append({"kind": "run", **run_context(item, runs.index(item) + 1)})
        elif isinstance(item, Tune):
            sections.append({"kind": "tune", **tune_context(item, number, output)})
        else:
            sections.append({"kind": "study", **study_context(item, number, output)})
    env = _environment()
    title = items[0].name if len(items) == 1 else f"{len(items)} runs"
    return env.get_template("report.html.j2").render(
        title=title, sections=sections, comparison=analysis.comparison(runs) if len(runs) > 1 else None,
        css=(TEMPLATES / "report.css").read_text(), script=(TEMPLATES / "report.js").read_text(),
        version=__version__, generated=time.strftime("%Y-%m-%d %H:%M"),
    )
