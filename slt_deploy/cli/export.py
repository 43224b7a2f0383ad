"""`slt export`: write a ticket in a registered format (NIR, ONNX, lava-dl netx, C99)."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import registry
from .io import console, emit_json
from .options import choices_help, flag_help, options_from_flags

_E = registry.EXPORTERS


def export(
    source: Path = typer.Argument(..., help="The ticket: a .slt file (or a .nir graph)."),
    to: str = typer.Option(..., "--to", help=choices_help(_E, "Format")),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (a folder for --to c)."),
    dt: float | None = typer.Option(None, "--dt", help=flag_help("--dt", _E, "--to")),
    allow_approximate: bool = typer.Option(False, "--allow-approximate",
                                           help=flag_help("--allow-approximate", _E, "--to")),
    mode: str | None = typer.Option(None, "--mode", help=flag_help("--mode", _E, "--to")),
    weights: str | None = typer.Option(None, "--weights", help=flag_help("--weights", _E, "--to")),
    input_frac_bits: int | None = typer.Option(None, "--input-frac-bits",
                                               help=flag_help("--input-frac-bits", _E, "--to")),
    prefix: str | None = typer.Option(None, "--prefix", help=flag_help("--prefix", _E, "--to")),
    arith: str | None = typer.Option(None, "--arith", help=flag_help("--arith", _E, "--to")),
    word: int | None = typer.Option(None, "--word", help=flag_help("--word", _E, "--to")),
    board: str | None = typer.Option(None, "--board", help=flag_help("--board", _E, "--to")),
    force: bool = typer.Option(False, "--force", help=flag_help("--force", _E, "--to")),
    calibrate: Path | None = typer.Option(None, "--calibrate", help=flag_help("--calibrate", _E, "--to")),
    as_json: bool = typer.Option(False, "--json", help="Print the exporter's report as JSON."),
) -> None:
    """Export a ticket to NIR, ONNX, lava-dl netx HDF5 or C99."""
    from .. import api

    spec = registry.exporter(to)
    flags = {"--dt": dt, "--allow-approximate": allow_approximate, "--mode": mode, "--weights": weights,
             "--input-frac-bits": input_frac_bits, "--prefix": prefix, "--arith": arith, "--word": word,
             "--board": board, "--force": force, "--calibrate": calibrate}
    options = options_from_flags(spec, flags, "--to")
    ticket = api.load_any(source)
    report = api.export(ticket, output, to=spec.name, **options)
    if as_json:
        emit_json({"format": spec.name, "output": str(output), "report": report})
        return
    console.print(f"wrote [bold]{output}[/] ({spec.name})")
    if isinstance(report, dict):
        for key, value in report.items():
            if not isinstance(value, (list, dict)):
                console.print(f"  {key}: {value}")
