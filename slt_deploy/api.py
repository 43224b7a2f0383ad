"""The flat public API; each function loads its heavy dependencies only when called."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import registry
from .errors import SltError
from .ir.graph import Ticket
from .result import Result


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


def run(ticket: Ticket, x: np.ndarray, target: str = registry.REFERENCE.name, record: bool = True,
        **options: Any) -> Result:
    """Run ``ticket`` on ``x`` (``(batch, *features)``, or ``(T, batch, *features)`` for spike input).

    ``target``: any registered target (:mod:`slt_deploy.registry`: reference, cpu, torch,
    onnxruntime, lava, lava-float, fixed-reference). ``record``: keep every node's per-step output
    in ``Result.layers`` (else the output only). ``options``: the target's own (for example
    ``dtype=np.float64`` for the reference, ``backend="numpy"`` for cpu); unknown ones are errors.
    """
    spec = registry.target(target)
    if not isinstance(ticket, Ticket):
        raise SltError(f"expected a Ticket, got {type(ticket).__name__}; load a file with slt_deploy.load")
    options = spec.checked_options(options)
    if not spec.available():
        raise SltError(spec.missing_message())
    result = spec.load()(ticket, x, record=record, **spec.fixed, **options)
    result.target = spec.name
    return result


def export(ticket: Ticket, path: str | os.PathLike[str], to: str = "nir", **options: Any) -> Any:
    """Export ``ticket`` to ``path`` in a registered format (nir, onnx, netx, c); returns the exporter's report."""
    spec = registry.exporter(to)
    if not isinstance(ticket, Ticket):
        raise SltError(f"expected a Ticket, got {type(ticket).__name__}; load a file with slt_deploy.load")
    options = spec.checked_options(options)
    if not spec.available():
        raise SltError(spec.missing_message())
    return spec.load()(ticket, path, **spec.fixed, **options)


def from_torch(module: Any, example_input: Any = None, timesteps: int = 8, binarize: bool = False,
               fold_bn: bool = True, **options: Any) -> Ticket:
    """Import a PyTorch / snnTorch / SpikingJelly model (see docs/importers.md)."""
    from .importers.torch import import_module

    return import_module(module, example_input, timesteps=timesteps, binarize=binarize, fold_bn=fold_bn, **options)
