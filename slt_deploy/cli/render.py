"""Tables for people shared by several commands (the agreement matrix of `slt verify` and the demo)."""

from __future__ import annotations

from typing import Any

from .io import console, table


def print_verify(report: Any, notes: bool = True) -> None:
    """The agreement matrix: spike agreement of every pair, exact-by-design pairs marked."""
    for run_ in report.runs:
        if run_.error:
            console.print(f"[yellow]{run_.name}[/]: did not run: {run_.error}")
        for note in run_.notes if notes else ():
            console.print(f"[dim]{run_.name}: {note}[/]")
    names = [r.name for r in report.runs if r.result is not None]
    pair = {(p.a, p.b): p for p in report.pairs} | {(p.b, p.a): p for p in report.pairs}
    grid = table("spike agreement", *names)
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append("-")
                continue
            p = pair[(a, b)]
            mark = "[red]FAIL[/] " if p.failed else ("= " if p.exact_by_design else "")
            cells.append(f"{mark}{p.spike_agreement:.2%}")
        grid.add_row(a, *cells)
    console.print(grid)
    for p in report.pairs:
        if not p.identical and p.first_divergence is not None:
            d = p.first_divergence
            console.print(f"[dim]{p.a} vs {p.b}: first difference at step {d['step']} in node '{d['node']}'; "
                          f"argmax agreement {p.argmax_agreement:.2%}[/]")
    console.print("'=' marks pairs exact by design (same float32 or Loihi fixed-point arithmetic): any "
                  "difference there is a bug")
    console.print("all exact-by-design pairs identical" if report.ok else "[red]an exact-by-design pair differs[/]")
