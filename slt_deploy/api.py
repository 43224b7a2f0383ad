"""The flat public API; each function loads its heavy dependencies only when called."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import SltError
from .ir.graph import Ticket
from .result import Result

TARGETS = ("reference", "torch", "cpu", "onnxruntime", "lava", "lava-float")
EXPORT_FORMATS = ("nir", "onnx", "netx", "c")


def save(ticket: Ticket, path: str | os.PathLike[str]) -> None:
    """Write ``ticket`` to a .slt file atomically (see docs/format.md)."""
    from .format import write_slt

    write_slt(ticket, path)


def load(path: str | os.PathLike[str]) -> Ticket:
    """Read a .slt file; any malformed file raises :class:`~slt_deploy.SltFormatError`."""
    from .format import read_slt

    return read_slt(path)


def load_any(path: str | os.PathLike[str]) -> Ticket:
    """Load a ticket from a .slt file, or import a .nir graph (by file suffix)."""
    suffix = os.fspath(path).lower().rsplit(".", 1)[-1] if "." in os.fspath(path) else ""
    if suffix == "nir":
        from .exporters.nir import import_nir

        return import_nir(path)
    return load(path)


def run(ticket: Ticket, x: np.ndarray, target: str = "reference", **options: Any) -> Result:
    """Run ``ticket`` on ``x`` (``(batch, *features)``, or ``(T, batch, *features)`` for spike input).

    ``target``: ``reference`` (numpy, ``dtype=np.float32`` or ``np.float64``) or ``torch``.
    """
    if target == "reference":
        from .reference import simulate

        return simulate(ticket, x, **options)
    if target == "torch":
        from .torch_target import run_torch

        return run_torch(ticket, x, **options)
    if target == "cpu":
        from .targets.cpu import run as run_cpu

        return run_cpu(ticket, x, **options)
    if target == "onnxruntime":
        from .targets.onnxruntime import run as run_ort

        return run_ort(ticket, x, **options)
    if target in ("lava", "lava-float"):
        from .targets.lava import run as run_lava

        return run_lava(ticket, x, mode="floating_pt" if target == "lava-float" else "fixed_pt", **options)
    raise SltError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def export(ticket: Ticket, path: str | os.PathLike[str], to: str = "nir", **options: Any) -> Any:
    """Export ``ticket`` to ``path`` as ``to`` in {nir, onnx, netx, c}; returns the exporter's report."""
    if to == "nir":
        from .exporters.nir import export_nir

        return export_nir(ticket, path, **options)
    if to == "onnx":
        from .exporters.onnx import export_onnx

        return export_onnx(ticket, path, **options)
    if to == "netx":
        from .exporters.netx import export_netx

        return export_netx(ticket, path, **options)
    if to == "c":
        from .exporters.c import export_c

        return export_c(ticket, path, **options)
    raise SltError(f"unknown export format {to!r}; choose one of {', '.join(EXPORT_FORMATS)}")


def from_torch(module: Any, example_input: Any = None, timesteps: int = 8, binarize: bool = False,
               fold_bn: bool = True, **options: Any) -> Ticket:
    """Import a PyTorch / snnTorch / SpikingJelly model (see docs/importers.md)."""
    from .importers.torch import import_module

    return import_module(module, example_input, timesteps=timesteps, binarize=binarize, fold_bn=fold_bn, **options)
