"""`slt run`: run a ticket on inputs on any registered target; save output spikes and counts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .. import registry
from ..errors import SltError
from .io import console, emit_json, load_npy, save_npz_atomic, table
from .options import choices_help, flag_help, options_from_flags

_T = registry.TARGETS


def run(
    path: Path = typer.Argument(..., help="The ticket: .slt or .nir (or an exported .onnx, run on ONNX Runtime)."),
    input: Path = typer.Option(..., "--input", "-i", help=".npy input: (batch, *features) or (T, batch, *features)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write spikes and counts to this .npz."),
    target: str | None = typer.Option(None, "--target", help=choices_help(_T, "Where to run") + " Default: "
                                      "reference; an exported .onnx file runs on onnxruntime."),
    precision: str | None = typer.Option(None, "--precision", help=flag_help("--precision", _T, "--target")),
    backend: str | None = typer.Option(None, "--backend", help=flag_help("--backend", _T, "--target")),
    threads: int | None = typer.Option(None, "--threads", help=flag_help("--threads", _T, "--target")),
    kernel: str | None = typer.Option(None, "--kernel", help=flag_help("--kernel", _T, "--target")),
    device: str | None = typer.Option(None, "--device", help=flag_help("--device", _T, "--target")),
    synapse: str | None = typer.Option(None, "--synapse", help=flag_help("--synapse", _T, "--target")),
    input_frac_bits: int | None = typer.Option(None, "--input-frac-bits",
                                               help=flag_help("--input-frac-bits", _T, "--target")),
    max_memory: str | None = typer.Option(None, "--max-memory", help="Refuse runs estimated above this size "
                                          "(e.g. 16G; default SLT_MAX_MEMORY, else min(8G, 3/4 of RAM))."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run a ticket on inputs and save output spikes (T, batch, *out) and counts."""
    flags = {"--precision": precision, "--backend": backend, "--threads": threads, "--kernel": kernel,
             "--device": device, "--synapse": synapse, "--input-frac-bits": input_frac_bits}
    x = load_npy(input)
    with _progress(target, show=not as_json) as progress:
        result, shapes = _run(path, x, target, flags, progress, max_memory)
    caveat = _caveat(path, input, x, result.target)
    if output is not None:
        arrays = {"counts": result.counts, "output": result.output}
        if result.spikes is not None:
            arrays["spikes"] = result.spikes
        save_npz_atomic(output, **arrays)
    summary = {
        "target": result.target,
        "batch": int(result.output.shape[1]),
        "timesteps": int(result.output.shape[0]),
        "output_shape": list(result.output.shape),
        "spiking_output": result.spiking,
        "predictions": result.predictions().tolist(),
        "spike_counts": {k: v.tolist() for k, v in result.spike_counts.items()},
        "diagnostics": result.diagnostics.to_dict(),
        "exactness": caveat,
        "saved": str(output) if output else None,
    }
    if as_json:
        emit_json(summary)
        return
    _print_summary(summary, result, shapes, output)
    if caveat:
        console.print(f"[yellow]{caveat}[/]")


@contextlib.contextmanager
def _progress(target: str | None, show: bool) -> Iterator[Any]:
    """A progress bar for targets that report progress (Lava's simulation); None otherwise."""
    spec = registry.TARGETS.get(target or "")
    if not show or spec is None or spec.option("progress") is None:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"{spec.name}: simulated steps"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("run", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _caveat(path: Path, input_path: Path, x: np.ndarray, name: str) -> str | None:
    """For a target that is not float32-exact by design: what its run provably equals, in one line."""
    spec = registry.TARGETS.get(name)
    if spec is None or spec.arithmetic is registry.Arithmetic.FLOAT32_EXACT:
        return None
    from .. import api

    semantics, _ = spec.semantics_for(api.load_any(path), x)
    if registry.FLOAT32 in semantics:
        return None
    verify = f"slt verify {path} --input {input_path} --targets reference,{name}"
    return (f"{name} ({spec.arithmetic.value}): its conversion report does not prove these spikes equal to the float32 "
            f"reference; measure the agreement with `{verify}`")


def _run(path: Path, x: np.ndarray, target: str | None, flags: dict[str, Any],
         progress: Any = None, max_memory: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Run ``path`` on ``x``; returns the result and the ticket's node shapes (empty for a bare .onnx)."""
    from .. import api

    suffix = path.suffix.lower()
    file_target = registry.target_for_file(suffix)
    if file_target is not None:  # an exported model runs as it is
        if target not in (None, file_target.name):
            raise SltError(f"{path}: a {suffix} file runs on --target {file_target.name}, not {target!r}")
        options = options_from_flags(file_target, flags, "--target")
        result = file_target.load_file_runner()(path, x, record=False, **options)
        result.target = file_target.name
        return result, {}
    spec = registry.target(target or registry.REFERENCE.name)
    options = options_from_flags(spec, flags, "--target")
    ticket = api.load_any(path)
    api.check_memory(ticket, x, False, max_memory)  # before any target allocates: names --max-memory
    if suffix in spec.file_suffixes:  # the target reads the file itself (cpu: bit planes memory-mapped)
        result = spec.load_file_runner()(str(path), x, record=False, **options)
        result.target = spec.name
    else:
        if progress is not None:
            options["progress"] = progress
        result = api.run(ticket, x, target=spec.name, record=False, max_memory=max_memory, **options)
    return result, dict(ticket.shapes)


def _print_summary(summary: dict[str, Any], result: Any, shapes: dict[str, Any], output: Path | None) -> None:
    rows = table("layer", "spikes per step (batch total)", "mean rate")
    for name, counts in result.spike_counts.items():
        neurons = int(np.prod(shapes[name])) * summary["batch"] if name in shapes else 0
        rate = f"{counts.mean() / neurons:.3f}" if neurons else "-"
        rows.add_row(name, " ".join(str(int(c)) for c in counts), rate)
    console.print(f"ran on [bold]{summary['target']}[/]")
    console.print(rows)
    for note in result.diagnostics.notes:
        console.print(f"[dim]{note}[/]")
    shown = summary["predictions"][:20]
    console.print(f"predictions: {shown}{' ...' if len(summary['predictions']) > 20 else ''}")
    if output:
        console.print(f"saved {output}")
