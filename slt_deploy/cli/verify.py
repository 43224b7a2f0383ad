"""`slt verify`: one ticket on several targets, the agreement matrix, exit 1 if an exact pair differs."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import registry
from .io import console, emit_json, load_npy
from .render import print_verify

_DEFAULT = ",".join(n for n, s in registry.TARGETS.items() if s.default_verify)


def verify(
    path: Path = typer.Argument(..., help="The ticket: a .slt file (or a .nir graph)."),
    input: Path = typer.Option(..., "--input", "-i", help=".npy input: (batch, *features) or (T, batch, *features)."),
    targets: str = typer.Option(_DEFAULT, "--targets", help="Comma-separated targets to compare: "
                                + ", ".join(registry.TARGETS) + "."),
    as_json: bool = typer.Option(False, "--json", help="Print the agreement matrix as JSON."),
) -> None:
    """Run every target on the same input and print the agreement matrix; exit 1 if an exact pair differs."""
    from .. import api
    from ..verify import parse_targets
    from ..verify import verify as run_verify

    names = parse_targets(targets)
    ticket = api.load_any(path)
    x = load_npy(input)
    say = None if as_json else (lambda name: console.print(f"running [bold]{name}[/] ..."))
    report = run_verify(ticket, x, names, progress=say)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_verify(report)
    if not report.ok:
        raise typer.Exit(1)
