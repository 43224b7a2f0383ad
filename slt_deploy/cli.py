"""The ``slt`` command line: a thin layer over the public API.

Every reporting command takes ``--json``. User errors print one line on stderr and exit
with status 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .errors import SltError, SltInputError

app = typer.Typer(
    name="slt",
    help="Pack, inspect, run and export sparse binary spiking networks (spiking lottery tickets).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
F = TypeVar("F", bound=Callable[..., Any])

MAX_INPUT_BYTES = 4 << 30


def user_errors(fn: F) -> F:
    """Turn :class:`SltError` (and unreadable user files) into one line on stderr and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SltError as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"slt: error: {message}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def emit_json(payload: Any) -> None:
    """Print machine-readable output (numpy scalars and arrays converted)."""
    print(json.dumps(payload, indent=2, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_npy(path: Path) -> np.ndarray:
    """Read a user's .npy input without pickles; every failure is an :class:`SltInputError`."""
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise SltInputError(f"{path}: input file is larger than 4 GiB")
        with open(path, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except SltInputError:
        raise
    except FileNotFoundError:
        raise SltInputError(f"{path}: no such input file") from None
    except IsADirectoryError:
        raise SltInputError(f"{path}: is a directory, expected a .npy file") from None
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltInputError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(arr, np.ndarray):
        raise SltInputError(f"{path}: expected a single .npy array, got an archive; pass a .npy file")
    return arr


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz next to ``path`` and rename it into place."""
    import io

    from .atomic import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------- commands
@app.command()
@user_errors
def pack(
    source: Path = typer.Argument(..., help="A .slt file to re-pack, or a PyTorch checkpoint (with --arch)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the .slt file."),
    arch: str | None = typer.Option(None, help="'package.module:callable' that builds the PyTorch model."),
    binarize: bool = typer.Option(False, help="Binarize kept weights: sign x alpha (alpha = mean |w| per channel)."),
    timesteps: int | None = typer.Option(None, "-T", "--timesteps", help="Time steps per inference (default 8)."),
    input_shape: str | None = typer.Option(None, help="Per-sample input shape, e.g. '64' or '1,28,28'."),
    encoding: str = typer.Option("direct", help="Input encoding: direct, rate or spikes."),
    trust_pickle: bool = typer.Option(
        False, help="Allow checkpoints that are whole pickled modules (runs code from the file!)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Pack a trained ticket into the compact .slt format."""
    from . import api

    suffix = source.suffix.lower()
    if suffix in (".slt", ".nir"):
        ticket = api.load_any(source)
        if timesteps is not None or binarize:
            raise SltError("re-packing a .slt keeps its ticket as is; --timesteps/--binarize apply to model imports")
    elif suffix in (".pt", ".pth", ".ckpt", ".bin") or arch:
        from .importers.torch import build_from_arch, load_checkpoint

        if arch:
            if os.getcwd() not in sys.path:  # like `python -m`: find the user's model module in the cwd
                sys.path.insert(0, os.getcwd())
            module, masks = build_from_arch(arch, source, trust_pickle=trust_pickle)
        else:
            checkpoint = load_checkpoint(source, trust_pickle=trust_pickle)
            if checkpoint.module is None:
                raise SltError(f"{source}: holds weights only; give --arch package.module:callable to build the model")
            module, masks = checkpoint.module, checkpoint.masks
        shape = _parse_shape(input_shape) if input_shape else None
        ticket = api.from_torch(module, None, timesteps=timesteps or 8, binarize=binarize, masks=masks,
                                input_shape=shape, encoding=encoding)
    else:
        raise SltError(
            f"{source}: unknown source type '{suffix}'; give a .slt or .nir file, or a PyTorch checkpoint with --arch"
        )
    api.save(ticket, output)
    summary = {"output": str(output), "bytes": output.stat().st_size, "nodes": len(ticket.nodes),
               "timesteps": ticket.timesteps}
    if as_json:
        emit_json(summary)
    else:
        console.print(f"wrote [bold]{output}[/] ({summary['bytes']:,} bytes, {len(ticket.nodes)} nodes, "
                      f"T={ticket.timesteps})")


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise SltError(f"--input-shape {text!r}: expected comma-separated positive integers, e.g. 1,28,28") from None
    if not shape or min(shape) < 1:
        raise SltError(f"--input-shape {text!r}: expected comma-separated positive integers, e.g. 1,28,28")
    return shape


@app.command()
@user_errors
def inspect(
    path: Path = typer.Argument(..., help="The .slt file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: ticket summary and a 'layers' list."),
) -> None:
    """Show each layer's encoding, size and bits per synapse against the entropy bound."""
    from .format import inspect_file

    ticket, layers = inspect_file(path)
    summary = {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "timesteps": ticket.timesteps,
        "encoding": ticket.encoding.kind,
        "input_shape": list(ticket.input_shape),
        "output_shape": list(ticket.output_shape),
        "nodes": [{"name": n.name, "kind": n.kind, "shape": list(ticket.shapes[n.name])} for n in ticket.nodes],
        "layers": layers,
    }
    if as_json:
        emit_json(summary)
        return
    console.print(f"[bold]{path}[/]: {summary['file_bytes']:,} bytes, T={ticket.timesteps}, "
                  f"{ticket.encoding.kind} input {tuple(ticket.input_shape)} -> {tuple(ticket.output_shape)}")
    table = Table("layer", "kind", "shape", "density", "encoding", "bytes", "bits/syn", "H(p)+p", "x fp32", "x bound")
    for row in layers:
        table.add_row(
            row["name"], row["kind"], "x".join(map(str, row["shape"])), f"{row['density']:.3f}", row["encoding"],
            f"{row['bytes']:,}", f"{row['bits_per_synapse']:.3f}", f"{row['entropy_bound_bits_per_synapse']:.3f}",
            _fmt(row["ratio_vs_fp32"], ".1f"), _fmt(row["ratio_vs_entropy_bound"], ".2f"),
        )
    console.print(table)


def _fmt(value: float | None, spec: str) -> str:
    """Format a ratio that is None when its denominator is zero (an all-pruned layer)."""
    return "-" if value is None else format(value, spec)


@app.command()
@user_errors
def run(
    path: Path = typer.Argument(..., help="The ticket: .slt or .nir (or an exported .onnx for onnxruntime)."),
    input: Path = typer.Option(..., "--input", "-i", help=".npy input: (batch, *features) or (T, batch, *features)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write spikes and counts to this .npz."),
    target: str = typer.Option(
        "reference", help="Where to run: reference, cpu, torch, onnxruntime, lava (fixed point) or lava-float."
    ),
    precision: str = typer.Option("float32", help="Working precision of the reference: float32 or float64."),
    backend: str = typer.Option("auto", help="CPU target: auto (compiled if numba is installed), numba or numpy."),
    threads: int | None = typer.Option(None, help="CPU target: threads to split the batch over (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run a ticket on inputs and save output spikes (T, batch, *out) and counts."""
    from . import api

    x = load_npy(input)
    if precision not in ("float32", "float64"):
        raise SltError(f"--precision must be float32 or float64, got {precision!r}")
    if path.suffix.lower() == ".onnx":  # an exported model runs as it is, on ONNX Runtime
        if target not in ("reference", "onnxruntime"):
            raise SltError(f"{path}: an .onnx file runs on --target onnxruntime, not {target!r}")
        from .targets.onnxruntime import run_onnx_file

        result = run_onnx_file(path, x)
        ticket_shapes: dict[str, tuple[int, ...]] = {}
    else:
        ticket = api.load_any(path)
        if (backend != "auto" or threads is not None) and target != "cpu":
            raise SltError("--backend and --threads apply to --target cpu")
        if target == "cpu" and path.suffix.lower() == ".slt":
            from .targets.cpu import run as run_cpu

            result = run_cpu(str(path), x, backend=backend, threads=threads)  # bit planes memory-mapped
        else:
            options: dict[str, Any] = {}
            if target == "reference":
                options["dtype"] = np.float32 if precision == "float32" else np.float64
            result = api.run(ticket, x, target=target, **options)
        ticket_shapes = dict(ticket.shapes)
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
        "predictions": result.predictions().tolist(),
        "spike_counts": {k: v.tolist() for k, v in result.spike_counts.items()},
        "saved": str(output) if output else None,
    }
    if as_json:
        emit_json(summary)
        return
    table = Table("layer", "spikes per step (batch total)", "mean rate")
    for name, counts in result.spike_counts.items():
        neurons = int(np.prod(ticket_shapes[name])) * summary["batch"] if name in ticket_shapes else 0
        rate = f"{counts.mean() / neurons:.3f}" if neurons else "-"
        table.add_row(name, " ".join(str(int(c)) for c in counts), rate)
    console.print(table)
    shown = summary["predictions"][:20]
    console.print(f"predictions: {shown}{' ...' if len(summary['predictions']) > 20 else ''}")
    if output:
        console.print(f"saved {output}")


@app.command()
@user_errors
def export(
    source: Path = typer.Argument(..., help="The ticket: a .slt file (or a .nir graph)."),
    to: str = typer.Option(..., "--to", help="Format: nir, onnx, netx or c."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (a folder for --to c)."),
    dt: float | None = typer.Option(None, help="NIR: time step in seconds stored in the graph (default 1e-4)."),
    allow_approximate: bool = typer.Option(
        False, help="Export constructs the format states only approximately (reported), instead of refusing."
    ),
    prefix: str | None = typer.Option(None, help="C: name prefix of the generated files and symbols."),
    arith: str | None = typer.Option(None, help="C: arithmetic, float or fixed."),
    word: int | None = typer.Option(None, help="C: bit-plane word size, 32 or 64."),
    board: str | None = typer.Option(None, help="C: target board profile that the ticket must fit."),
    force: bool = typer.Option(False, help="Overwrite an existing output folder (C)."),
    calibrate: Path | None = typer.Option(
        None, help="C --arith fixed: .npy of typical direct inputs that fixes the input scale (default: integers)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the exporter's report as JSON."),
) -> None:
    """Export a ticket to NIR, ONNX, lava-dl netx HDF5 or C99."""
    from . import api

    ticket = api.load_any(source)
    given = {"dt": dt, "allow_approximate": allow_approximate or None, "prefix": prefix, "arith": arith,
             "word": word, "board": board, "force": force or None,
             "fixed_input": None if calibrate is None else load_npy(calibrate)}
    accepted = {"nir": ("dt", "allow_approximate"), "onnx": (), "netx": ("allow_approximate",),
                "c": ("prefix", "arith", "word", "board", "force", "fixed_input")}
    if to not in accepted:
        raise SltError(f"unknown export format {to!r}; choose one of {', '.join(accepted)}")
    stray = [k for k, v in given.items() if v is not None and k not in accepted[to]]
    if stray:
        flag = "calibrate" if stray[0] == "fixed_input" else stray[0].replace("_", "-")
        raise SltError(f"--{flag} does not apply to --to {to}")
    report = api.export(ticket, output, to=to, **{k: v for k, v in given.items() if v is not None})
    payload = {"format": to, "output": str(output), "report": report}
    if as_json:
        emit_json(payload)
    else:
        console.print(f"wrote [bold]{output}[/] ({to})")
        if isinstance(report, dict):
            for key, value in report.items():
                if not isinstance(value, (list, dict)):
                    console.print(f"  {key}: {value}")


@app.command()
@user_errors
def verify(
    path: Path = typer.Argument(..., help="The ticket: a .slt file (or a .nir graph)."),
    input: Path = typer.Option(..., "--input", "-i", help=".npy input: (batch, *features) or (T, batch, *features)."),
    targets: str = typer.Option(
        "reference,cpu", help="Comma-separated targets: reference, cpu, torch, onnxruntime, lava, lava-float, "
        "fixed-reference."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the agreement matrix as JSON."),
) -> None:
    """Run every target on the same input and print the agreement matrix; exit 1 if an exact pair differs."""
    from . import api
    from .verify import parse_targets
    from .verify import verify as run_verify

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


def print_verify(report: Any, notes: bool = True) -> None:
    """The agreement matrix for people: spike agreement of every pair, exact-by-design pairs marked."""
    for run_ in report.runs:
        if run_.error:
            console.print(f"[yellow]{run_.name}[/]: did not run: {run_.error}")
        for note in run_.notes if notes else ():
            console.print(f"[dim]{run_.name}: {note}[/]")
    names = [r.name for r in report.runs if r.result is not None]
    pair = {(p.a, p.b): p for p in report.pairs} | {(p.b, p.a): p for p in report.pairs}
    table = Table("spike agreement", *names)
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append("-")
                continue
            p = pair[(a, b)]
            mark = "[red]FAIL[/] " if p.failed else ("= " if p.exact_by_design else "")
            cells.append(f"{mark}{p.spike_agreement:.2%}")
        table.add_row(a, *cells)
    console.print(table)
    for p in report.pairs:
        if not p.identical and p.first_divergence is not None:
            d = p.first_divergence
            console.print(f"[dim]{p.a} vs {p.b}: first difference at step {d['step']} in node '{d['node']}'; "
                          f"argmax agreement {p.argmax_agreement:.2%}[/]")
    console.print("'=' marks pairs exact by design (same float32 or Loihi fixed-point arithmetic): any "
                  "difference there is a bug")
    console.print("all exact-by-design pairs identical" if report.ok else "[red]an exact-by-design pair differs[/]")


def _register_energy() -> None:
    from .energy.command import energy as energy_command

    app.command("energy")(user_errors(energy_command))


_register_energy()


def _register_search() -> None:
    from .search.command import search as search_command

    app.command("search")(user_errors(search_command))


_register_search()


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("slt-demo"), help="Folder for everything the demo writes."),
    retrain: bool = typer.Option(False, help="Search a new ticket (IMP + binary fine-tune) instead of the example."),
    ticket: Path | None = typer.Option(None, help="Use this .slt instead of the committed example ticket."),
    rounds: int = typer.Option(9, help="With --retrain: IMP rounds of 25% (9 rounds: 92.5% sparse)."),
    epochs: int = typer.Option(8, help="With --retrain: training epochs per round."),
    seed: int = typer.Option(0, help="With --retrain: random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the demo summary as JSON."),
) -> None:
    """The whole path on the built-in digits example: ticket, inspect, export, verify every target, energy."""
    from .demo import run_demo

    summary = run_demo(out, retrain=retrain, ticket_path=ticket, rounds=rounds, epochs=epochs, seed=seed,
                       console=None if as_json else console)
    if as_json:
        emit_json(summary)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``slt`` console script."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    app(args=argv, prog_name="slt")


if __name__ == "__main__":
    main()
