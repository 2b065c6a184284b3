"""`lsllm report`: one self-contained HTML page a person reads to judge runs and studies.

    lsllm report runs/sst2-...                      # -> runs/sst2-.../report.html
    lsllm report runs/a runs/b --output ab.html     # a comparison table, then each run
    lsllm report studies/sst2-sizes                 # the study's table, plot and cells
    lsllm report tunes/mine                         # a tune's trials and its best one (tune.json)

The page shows, per run: what was trained and how to reproduce it; validation and test
metrics, the per-class table and the confusion matrix as a heat map; the training curves with
the selected checkpoint; the test examples it got wrong (filterable, sortable by confidence)
or, for NER, the sentences with gold and predicted spans. It needs no network and no model:
everything comes from the run directory's files (`collect`), is analysed (`analysis`), drawn
(`plots`, matplotlib SVG) and rendered (`html`, Jinja2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lsllm.errors import ConfigError
from lsllm.files import atomic_write_text
from lsllm.report import collect, html
from lsllm.runs import REPORT_HTML

REPORT = REPORT_HTML


def default_output(paths: Sequence[str | Path]) -> Path:
    """A single run or study gets its report inside it; several get ./report.html."""
    return Path(paths[0]) / REPORT if len(paths) == 1 else Path(REPORT)


def write_report(run_dirs: Sequence[str | Path], output: str | Path | None = None) -> Path:
    """Write the HTML report of runs and/or studies; returns its path.

    Only each run's config.yaml (or a study's study.json) is required: missing metrics,
    predictions or logs (an unfinished or older run) leave their sections with a note.

    Args:
        run_dirs: run directories (`lsllm train` / `lsllm sft train` outputs) and study directories.
        output: the HTML file to write (default: `default_output`).

    Raises:
        ConfigError: no directory given, or one that is neither a run nor a study.

    Example:
        >>> write_report(["runs/sst2-demo"])
        PosixPath('runs/sst2-demo/report.html')
    """
    if not run_dirs:
        raise ConfigError("report needs at least one run or study directory")
    output = Path(output) if output is not None else default_output(run_dirs)
    if output.is_dir():
        raise ConfigError(f"--output {output}: a folder; name the HTML file, e.g. {output / REPORT}")
    if not output.parent.is_dir():
        raise ConfigError(f"--output {output}: the folder {output.parent} does not exist; create it or choose another path")
    items = [collect.read(path) for path in run_dirs]
    try:
        atomic_write_text(output, html.render(items, output))
    except OSError as err:
        raise ConfigError(f"--output {output}: cannot write it ({err.strerror or type(err).__name__}); choose another path") from None
    return output


__all__ = ["REPORT", "default_output", "write_report"]
