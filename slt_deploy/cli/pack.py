"""`slt pack`: import a trained model (PyTorch checkpoint, .nir) or re-pack a .slt into the .slt format."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..errors import SltError
from .io import console, emit_json, parse_shape


def pack(
    source: Path = typer.Argument(..., help="A .slt file to re-pack, a .nir graph, or a PyTorch checkpoint "
                                  "(with --arch)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the .slt file."),
    arch: str | None = typer.Option(None, help="'package.module:callable' that builds the PyTorch model."),
    binarize: bool = typer.Option(False, help="Binarize kept weights: sign x alpha (alpha = mean |w| per channel)."),
    timesteps: int | None = typer.Option(None, "-T", "--timesteps", help="Time steps per inference (default 8 for "
                                         "model imports; for a .slt/.nir/netx file it replaces the stored T)."),
    dt: float | None = typer.Option(None, "--dt", help="NIR graphs from other tools: the time step in seconds "
                                    "their tau is read with (beta = 1 - dt/tau; default: the graph's, else 1e-4)."),
    input_shape: str | None = typer.Option(None, help="Per-sample input shape, e.g. '64' or '1,28,28'."),
    encoding: str | None = typer.Option(
        None, help="Input encoding: direct (default for model imports), rate or spikes; for a .slt/.nir it "
        "replaces the stored one."),
    seed: int | None = typer.Option(
        None, help="Seed of --encoding rate, an integer in [0, 2^64) (default: the stored seed, else 0); with a "
        "rate .slt alone it re-keys it with the current rate code."),
    trust_pickle: bool = typer.Option(
        False, help="Allow checkpoints that are whole pickled modules (runs code from the file!)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Pack a trained ticket into the compact .slt format."""
    from .. import api
    from ..ir.graph import MAX_TIMESTEPS, encoding_of

    suffix = source.suffix.lower()
    if timesteps is not None and not 1 <= timesteps <= MAX_TIMESTEPS:
        raise SltError(f"-T/--timesteps must be an integer in [1, {MAX_TIMESTEPS:,}], got {timesteps}")
    kind = api.source_kind(source)
    if kind in ("slt", "nir", "netx") and not arch:
        _refuse_import_flags(kind, binarize=binarize, input_shape=input_shape, trust_pickle=trust_pickle, dt=dt)
        if kind == "nir":
            from ..exporters.nir import import_nir

            ticket = import_nir(source, timesteps=timesteps, dt=dt)
        else:
            ticket = api.load_any(source, timesteps=timesteps)
        if timesteps is not None and timesteps != ticket.timesteps:
            ticket = ticket.with_timesteps(timesteps)
        if encoding is not None or seed is not None:
            ticket = ticket.with_encoding(encoding_of(encoding or ticket.encoding.kind, seed, keep=ticket.encoding))
    elif suffix in (".pt", ".pth", ".ckpt", ".bin") or arch:
        if dt is not None:
            raise SltError("--dt applies to NIR graphs (the time step their tau is read with), not to PyTorch models")
        from ..importers.torch import build_from_arch, load_checkpoint

        if arch:
            if os.getcwd() not in sys.path:  # like `python -m`: find the user's model module in the cwd
                sys.path.insert(0, os.getcwd())
            module, masks = build_from_arch(arch, source, trust_pickle=trust_pickle)
        else:
            checkpoint = load_checkpoint(source, trust_pickle=trust_pickle)
            if checkpoint.module is None:
                raise SltError(f"{source}: holds weights only; give --arch package.module:callable to build the model")
            module, masks = checkpoint.module, checkpoint.masks
        shape = parse_shape(input_shape) if input_shape else None
        ticket = api.from_torch(module, None, timesteps=8 if timesteps is None else timesteps, binarize=binarize,
                                masks=masks,
                                input_shape=shape, encoding=encoding_of(encoding or "direct", seed))
    else:
        raise SltError(
            f"{source}: unknown source type '{suffix}'; give a .slt or .nir file, or a PyTorch checkpoint with --arch"
        )
    api.save(ticket, output)
    enc = ticket.encoding
    summary = {"output": str(output), "bytes": output.stat().st_size, "nodes": len(ticket.nodes),
               "timesteps": ticket.timesteps, "encoding": enc.kind, "seed": enc.seed, "rate_code": enc.code}
    if as_json:
        emit_json(summary)
    else:
        rate = f", rate code {enc.code} seed {enc.seed}" if enc.kind == "rate" else ""
        console.print(f"wrote [bold]{output}[/] ({summary['bytes']:,} bytes, {len(ticket.nodes)} nodes, "
                      f"T={ticket.timesteps}, {enc.kind} input{rate})")


def _refuse_import_flags(kind: str, **given: object) -> None:
    """Options that only mean something for a PyTorch import (or a NIR graph) are refused, naming the flag."""
    what = {"slt": "a .slt file", "nir": "a NIR graph", "netx": "a netx network"}[kind]
    reasons = {
        "binarize": ("--binarize", "keeps its weights as stored (binarize when importing the model)"),
        "input_shape": ("--input-shape", "states its own input shape"),
        "trust_pickle": ("--trust-pickle", "is not a pickle; the flag is for PyTorch checkpoints"),
        "dt": ("--dt", "has no continuous-time parameters (--dt is for NIR graphs)"),
    }
    for key, value in given.items():
        if key == "dt" and kind == "nir":
            continue
        if value not in (None, False):
            flag, why = reasons[key]
            raise SltError(f"{flag} does not apply to {what}: it {why}")
