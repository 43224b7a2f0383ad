"""The flat public API; each function loads its heavy dependencies only when called."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import SltError
from .ir.graph import Ticket
from .result import Result

TARGETS = ("reference", "torch")


def save(ticket: Ticket, path: str | os.PathLike[str]) -> None:
    """Write ``ticket`` to a .slt file atomically (see docs/format.md)."""
    from .format import write_slt

    write_slt(ticket, path)


def load(path: str | os.PathLike[str]) -> Ticket:
    """Read a .slt file; any malformed file raises :class:`~slt_deploy.SltFormatError`."""
    from .format import read_slt

    return read_slt(path)


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
    raise SltError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def from_torch(module: Any, example_input: Any = None, timesteps: int = 8, binarize: bool = False,
               fold_bn: bool = True, **options: Any) -> Ticket:
    """Import a PyTorch / snnTorch / SpikingJelly model (see docs/importers.md)."""
    from .importers.torch import import_module

    return import_module(module, example_input, timesteps=timesteps, binarize=binarize, fold_bn=fold_bn, **options)
