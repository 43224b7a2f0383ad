"""`slt inspect`: per layer, the encoding, size and bits per synapse against the entropy bound."""

from __future__ import annotations

from pathlib import Path

import typer

from .io import console, emit_json, fmt, table


def inspect(
    path: Path = typer.Argument(..., help="The ticket: a .slt file, or a .nir / netx .net.h5 graph (sizes shown as "
                                "they would be packed into a .slt)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: ticket summary and a 'layers' list."),
) -> None:
    """Show each layer's encoding, size and bits per synapse against the entropy bound."""
    from .. import api
    from ..format import inspect_file, layer_report

    if api.source_kind(path) in ("slt", "unknown"):
        ticket, layers = inspect_file(path)
    else:
        ticket = api.load_any(path)
        layers = layer_report(ticket)
    summary = {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "timesteps": ticket.timesteps,
        "encoding": ticket.encoding.kind,
        "seed": ticket.encoding.seed,
        "rate_code": ticket.encoding.code,
        "input_shape": list(ticket.input_shape),
        "output_shape": list(ticket.output_shape),
        "nodes": [{"name": n.name, "kind": n.kind, "shape": list(ticket.shapes[n.name])} for n in ticket.nodes],
        "layers": layers,
    }
    if as_json:
        emit_json(summary)
        return
    console.print(f"[bold]{path}[/]: {summary['file_bytes']:,} bytes, T={ticket.timesteps}, "
                  f"{ticket.encoding.kind} input {tuple(ticket.input_shape)} -> {tuple(ticket.output_shape)}"
                  + (f", rate code {ticket.encoding.code} seed {ticket.encoding.seed}"
                     if ticket.encoding.kind == "rate" else ""))
    rows = table("layer", "kind", "shape", "density", "encoding", "bytes", "bits/syn", "H(p)+p", "x fp32", "x bound")
    for row in layers:
        rows.add_row(
            row["name"], row["kind"], "x".join(map(str, row["shape"])), f"{row['density']:.3f}", row["encoding"],
            f"{row['bytes']:,}", f"{row['bits_per_synapse']:.3f}", f"{row['entropy_bound_bits_per_synapse']:.3f}",
            fmt(row["ratio_vs_fp32"], ".1f"), fmt(row["ratio_vs_entropy_bound"], ".2f"),
        )
    console.print(rows)
