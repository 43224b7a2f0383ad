"""``slt energy``: the energy report of a .slt ticket on given inputs.

Registered by :mod:`slt_deploy.cli` as ``app.command("energy")(user_errors(energy))``::

    slt energy t.slt --input x.npy [--profile cmos45-fp32|my.toml]
               [--convention neurobench|spikformer|memory-aware] [--report out.html|out.md] [--json]
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import SltError

REPORT_SUFFIXES = (".html", ".htm", ".md", ".markdown")


def energy(
    path: Path = typer.Argument(..., help="The .slt ticket."),
    input: Path = typer.Option(..., "--input", "-i",
                               help=".npy input: (batch, *features), or (T, batch, *features) for spike trains."),
    profile: str = typer.Option("cmos45-fp32", help="Energy profile: cmos45-fp32, cmos45-fp16, cmos45-int8, "
                                                    "cmos45-int32, loihi, or a .toml file."),
    convention: str = typer.Option("neurobench", help="Counting convention: neurobench, spikformer or memory-aware."),
    report: Path | None = typer.Option(None, "--report",
                                       help="Write a report: .html (self-contained, with plots) or .md."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (schema slt-energy/1)."),
) -> None:
    """Count effective ACs/MACs of a run and report energy per inference against ANN and dense SNN."""
    from .. import api
    from ..atomic import atomic_write_bytes
    from ..cli.io import console, load_npy
    from .model import energy as compute

    if report is not None and report.suffix.lower() not in REPORT_SUFFIXES:
        raise SltError(f"--report {report}: give a .html or .md file name")
    ticket = api.load(path)
    x = load_npy(input)
    result = compute(ticket, x, profile=profile, convention=convention)
    result.ticket_info["name"] = path.name
    if report is not None:
        text = result.to_markdown() if report.suffix.lower() in (".md", ".markdown") else result.to_html()
        atomic_write_bytes(report, text.encode("utf-8"))
    if as_json:
        print(result.to_json())
        return
    result.print(console)
    if report is not None:
        console.print(f"wrote {report}")
