"""Fixed-width text: the per-handover summary table and the verdict lines (CLI and scenario output)."""

from __future__ import annotations

from typing import Any

from reports.metrics import RunResult

PASS_MARK = "✔"
FAIL_MARK = "✘"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def flow_cell(row: dict[str, Any], flow: str) -> str:
    """``12.5 (11)``: interruption ms and packets lost; ``never (40)`` when the flow did not come back."""
    lost = row.get(f"{flow}_lost")
    if not row.get(f"{flow}_restored"):
        return f"never ({lost})"
    return f"{_number(row.get(f'{flow}_interruption_ms'))} ({lost})"


def summary_table(result: RunResult) -> str:
    """One line per handover: from→to, detection, per flow interruption ms (lost), registration RTT ms."""
    headers = ["#", "from→to", "detection", *(f"{flow} ms (lost)" for flow in result.flows), "reg RTT ms"]
    lines_cells: list[list[str]] = []
    for row in result.handovers:
        lines_cells.append(
            [
                str(row["handover"]),
                f"{row['from']}→{row['to']}",
                str(row["detection"]),
                *(flow_cell(row, flow) for flow in result.flows),
                _number(row["registration_rtt_ms"]),
            ]
        )
    widths = [max(len(headers[i]), *(len(cells[i]) for cells in lines_cells)) for i in range(len(headers))]
    left = {1, 2}

    def render(cells: list[str]) -> str:
        parts = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [render(headers), render(["-" * width for width in widths])]
    out += [render(cells) for cells in lines_cells]
    if not lines_cells:
        out.append("(no handovers recorded)")
    return "\n".join(out)


def verdict_lines(result: RunResult) -> str:
    """One line per expectation with ✔/✘, then the overall verdict."""
    lines = [
        f"{PASS_MARK if v.passed else FAIL_MARK} {v.name}" + (f": {v.detail}" if v.detail else "")
        for v in result.verdicts
    ]
    lines.append(overall_line(result))
    return "\n".join(lines)


def overall_line(result: RunResult) -> str:
    failed = [v.name for v in result.verdicts if not v.passed]
    total = len(result.verdicts)
    if not failed:
        return f"PASS: {total} of {total} expectations met"
    return f"FAIL: {len(failed)} of {total} expectations failed ({'; '.join(failed)})"
