"""`slt bench`: time one ticket on several targets, side by side, on your own input.

Every target is prepared once (weights packed, ONNX session built), run once to warm up (its
output is compared with the first target's: a benchmark of a target that computes something else
is reported as such), then the targets run in turn, interleaved, ``--repeats`` times, so that
machine load affects them alike. Reported: median and 10th/90th percentile wall time per batch,
samples per second, and each target's speed relative to the first one. Nothing is asserted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .. import registry
from ..errors import SltError
from .io import console, emit_json, load_npy, table

MAX_REPEATS = 100_000
_DEFAULT = ",".join(n for n, s in registry.TARGETS.items() if s.arithmetic is registry.Arithmetic.FLOAT32_EXACT)


def bench(
    path: Path = typer.Argument(..., help="The ticket: a .slt file (or a .nir graph)."),
    input: Path = typer.Option(..., "--input", "-i", help=".npy input batch: (batch, *features) or "
                               "(T, batch, *features)."),
    targets: str = typer.Option(_DEFAULT, "--targets", help="Comma-separated targets, the first is the baseline "
                                "of the ratios; unavailable ones are skipped with the reason: "
                                + ", ".join(registry.TARGETS) + "."),
    repeats: int = typer.Option(20, "--repeats", help=f"Timed runs per target (interleaved), at most {MAX_REPEATS:,}."),
    as_json: bool = typer.Option(False, "--json", help="Print the timings as JSON."),
) -> None:
    """Time a ticket on several targets side by side (medians, percentiles, ratios)."""
    from .. import api

    if not 1 <= repeats <= MAX_REPEATS:  # 10^23 repeats ran for ever
        raise SltError(f"--repeats must be an integer in [1, {MAX_REPEATS:,}], got {repeats}")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    specs = [registry.target(n) for n in dict.fromkeys(names)]
    if not specs:
        raise SltError("--targets names no target")
    ticket, x = api.load_any(path), load_npy(input)
    runners, skipped, outputs = _prepare(ticket, x, specs)
    if not runners:
        raise SltError("none of --targets could run this ticket: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    times = _time(runners, x, repeats, show=not as_json)
    rows = _rows(times, outputs, x, ticket)
    if as_json:
        emit_json({"ticket": str(path), "batch": _batch(ticket, x), "repeats": repeats, "results": rows,
                   "skipped": skipped})
        return
    _print(rows, skipped, repeats, _batch(ticket, x))


def _batch(ticket: Any, x: np.ndarray) -> int:
    return int(x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0])


def _prepare(ticket: Any, x: np.ndarray, specs: list[Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    runners, skipped, outputs = {}, {}, {}
    for spec in specs:
        if not spec.available():
            skipped[spec.name] = spec.missing_message()
            continue
        try:
            run = spec.prepared(ticket)
            outputs[spec.name] = run(x, record=False).output  # warm-up, and what it computes
        except (SltError, ImportError) as exc:
            skipped[spec.name] = str(exc).splitlines()[0]
            continue
        runners[spec.name] = run
    return runners, skipped, outputs


def _time(runners: dict[str, Any], x: np.ndarray, repeats: int, show: bool) -> dict[str, list[float]]:
    from rich.progress import Progress

    times: dict[str, list[float]] = {name: [] for name in runners}
    with Progress(console=console, transient=True, disable=not show) as bar:
        task = bar.add_task("timing", total=repeats * len(runners))
        for _ in range(repeats):
            for name, run in runners.items():
                start = time.perf_counter()
                run(x, record=False)
                times[name].append(time.perf_counter() - start)
                bar.advance(task)
    return times


def _rows(times: dict[str, list[float]], outputs: dict[str, Any], x: np.ndarray, ticket: Any) -> list[dict[str, Any]]:
    batch = _batch(ticket, x)
    first = next(iter(times))
    base = float(np.median(times[first]))
    rows = []
    for name, ts in times.items():
        med = float(np.median(ts))
        rows.append({"target": name, "median_s": med, "p10_s": float(np.percentile(ts, 10)),
                     "p90_s": float(np.percentile(ts, 90)), "samples_per_s": batch / med,
                     "speed_vs_first": base / med,
                     "same_output_as_first": bool(np.array_equal(outputs[name], outputs[first]))})
    return rows


def _print(rows: list[dict[str, Any]], skipped: dict[str, str], repeats: int, batch: int) -> None:
    grid = table("target", "median ms", "p10-p90 ms", "samples/s", f"speed vs {rows[0]['target']}",
                 "same output")
    for r in rows:
        grid.add_row(r["target"], f"{r['median_s'] * 1e3:.3f}", f"{r['p10_s'] * 1e3:.3f}-{r['p90_s'] * 1e3:.3f}",
                     f"{r['samples_per_s']:,.0f}", f"{r['speed_vs_first']:.2f}x",
                     "yes" if r["same_output_as_first"] else "[red]NO[/]")
    console.print(f"batch {batch}, {repeats} interleaved runs per target (medians)")
    console.print(grid)
    for name, why in skipped.items():
        console.print(f"[yellow]{name}[/]: skipped: {why}")
