"""Reports: from a scenario run folder to metrics, a per-handover decomposition, plots and report.md.

Pure functions over the files of one run folder (design.md §7); never imports Mininet, needs no root::

    from reports import render, summary_table
    result = render(Path("reports/runs/handover-20240101T000000Z"))
    print(summary_table(result))

or from a shell: ``python -m reports RUN_DIR [--json] [-q]``.
"""

from __future__ import annotations

from reports.errors import RunFolderError
from reports.metrics import RunResult, Verdict, analyse
from reports.render import render
from reports.rundir import Run, load_run
from reports.table import summary_table, verdict_lines

__all__ = [
    "Run",
    "RunFolderError",
    "RunResult",
    "Verdict",
    "analyse",
    "load_run",
    "render",
    "summary_table",
    "verdict_lines",
]
