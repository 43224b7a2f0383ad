"""``slt energy``: the energy report of a .slt ticket on given inputs.

Registered by :mod:`slt_deploy.cli` as ``app.command("energy")(user_errors(energy))``::

    slt energy t.slt --input x.npy [--profile cmos45-fp32|my.toml]
               [--convention neurobench|spikformer|memory-aware] [--ann ann.safetensors|ann.pt]
               [--ann-input a.npy] [--ann-sparsity 0.5] [--report out.html|out.md] [--figures DIR]
               [--batch-size N] [--json]

The input is memory-mapped and streamed in batches (a progress bar on stderr when it takes
more than one), so a large ``.npy`` is never read whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import SltError

REPORT_SUFFIXES = (".html", ".htm", ".md", ".markdown")
MAX_INPUT_BYTES = 64 << 30


def open_npy(path: Path, flag: str) -> Any:
    """A user's ``.npy`` memory-mapped read-only (no pickles, header checked before mapping,
    :func:`slt_deploy.untrusted.load_npy`); every failure is one :class:`SltInputError` line."""
    from ..untrusted import load_npy

    return load_npy(path, flag, limit=MAX_INPUT_BYTES, mmap=True)


def energy(
    path: Path = typer.Argument(..., help="The ticket: a .slt file (or a .nir graph)."),
    input: Path = typer.Option(..., "--input", "-i",
                               help=".npy input: (batch, *features), or (T, batch, *features) for spike trains."),
    profile: str = typer.Option("cmos45-fp32", help="Energy profile: cmos45-fp32, cmos45-fp16, cmos45-int8, "
                                                    "cmos45-int32, loihi, or a .toml file."),
    convention: str = typer.Option("neurobench", help="Primary convention: neurobench, spikformer or "
                                   "memory-aware (the compute-only and memory-aware views are always both shown)."),
    ann: Path | None = typer.Option(None, "--ann", help="A trained ReLU ANN of the ticket's architecture, run on the "
                                    "same inputs and counted as NeuroBench does: .safetensors or a .pt state dict "
                                    "(slt search --ann-twin writes one). Without it the ANN is estimated."),
    ann_input: Path | None = typer.Option(None, "--ann-input", help=".npy input of the ANN (batch, *features), for "
                                          "a spike-train ticket (default: spike counts over T)."),
    ann_sparsity: float | None = typer.Option(None, "--ann-sparsity", help="Without --ann: the assumed fraction of "
                                              "zero hidden ReLU outputs of the estimated ANN (default 0.5)."),
    report: Path | None = typer.Option(None, "--report",
                                       help="Write a report: .html (self-contained, with figures) or .md."),
    figures: Path | None = typer.Option(None, "--figures", help="Write every figure alone as SVG and PDF into "
                                        "this folder (needs matplotlib)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Samples per streamed batch (default: what "
                                          "fits 64 MiB of recorded activity)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (schema slt-energy/2)."),
) -> None:
    """Count effective ACs/MACs of a run; energy per inference against the ANN (NeuroBench's count) and dense SNN,
    compute-only and memory-aware, with break-even spike rates and the per-input spread."""
    from .. import api
    from ..atomic import atomic_write_bytes
    from ..cli.io import console
    from ..errors import SltProfileError
    from .ann_files import SltAnnError
    from .model import energy as compute

    if report is not None and report.suffix.lower() not in REPORT_SUFFIXES:
        raise SltError(f"--report {report}: give a .html or .md file name")
    if ann is not None and ann_sparsity is not None:
        raise SltError("--ann-sparsity is the assumption of the estimated ANN; with --ann the sparsity is measured")
    if ann_sparsity is not None and not 0 <= ann_sparsity <= 1:
        raise SltError(f"--ann-sparsity {ann_sparsity}: give a fraction in [0, 1]")
    if batch_size is not None and batch_size < 1:
        raise SltError(f"--batch-size {batch_size}: give a positive number of samples")
    if figures is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SltError("--figures needs matplotlib: pip install 'slt-deploy[report]'") from None
    ticket = api.load_any(path)
    x = open_npy(input, "--input")
    xa = open_npy(ann_input, "--ann-input") if ann_input is not None else None
    with _progress(quiet=as_json) as progress:
        try:
            result = compute(ticket, x, profile=profile, convention=convention, ann=ann, ann_input=xa,
                             ann_sparsity=ann_sparsity, batch_size=batch_size, progress=progress)
        except SltAnnError as exc:  # about the --ann file (its path may also be another option's value)
            raise SltAnnError(str(exc) if str(exc).startswith("--ann") else f"--ann: {exc}") from None
        except SltProfileError as exc:  # likewise about --profile
            raise SltProfileError(str(exc) if str(exc).startswith("--profile") else f"--profile: {exc}") from None
    result.ticket_info["name"] = path.name
    if report is not None:
        text = result.to_markdown() if report.suffix.lower() in (".md", ".markdown") else result.to_html()
        atomic_write_bytes(report, text.encode("utf-8"))
    written = result.save_figures(figures) if figures is not None else []
    if as_json:
        print(result.to_json())
        return
    result.print(console)
    if report is not None:
        console.print(f"wrote {report}")
    if written:
        console.print(f"wrote {len(written)} figure files (SVG and PDF) into {figures}")


class _progress:
    """A rich progress bar on stderr, one task per stage, shown only for runs of more than one batch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        err = Console(stderr=True)
        self.bar = Progress(TextColumn("counting {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal)
        self.bar.start()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
