"""The flat public API; each function loads its heavy dependencies only when called."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import registry
from .errors import SltError, SltInputError
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


_MAGIC = {b"\x89HDF\r\n\x1a\n": "hdf5", b"\x93NUMPY": "npy", b"PK\x03\x04": "zip"}


def source_kind(path: str | os.PathLike[str]) -> str:
    """What a user's file is, from its first bytes and its name: ``slt``, ``nir``, ``netx``, ``onnx``,
    ``npy``, ``npz``, ``pytorch`` (a torch.save zip) or ``unknown`` (a missing file is ``unknown``)."""
    name = os.fspath(path).lower()
    from .untrusted import read_head

    head = read_head(path, 16)  # b"" for a FIFO, device or unreadable path: never blocks
    magic = next((kind for sig, kind in _MAGIC.items() if head.startswith(sig)), None)
    if magic == "hdf5":
        return "netx" if name.endswith(".h5") else "nir"
    if magic == "npy":
        return "npy"
    if magic == "zip":
        return "npz" if name.endswith(".npz") else "pytorch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "slt"  # safetensors: 8-byte little-endian header length, then the JSON header
    for suffix, kind in ((".slt", "slt"), (".nir", "nir"), (".onnx", "onnx"), (".net.h5", "netx"), (".npy", "npy"),
                         (".npz", "npz"), (".pt", "pytorch"), (".pth", "pytorch"), (".ckpt", "pytorch")):
        if name.endswith(suffix):
            return kind
    return "unknown"


def load_any(path: str | os.PathLike[str], *, timesteps: int | None = None) -> Ticket:
    """A ticket from any file that holds one: a .slt, a NIR graph, or a lava-dl netx network.

    Files that hold no ticket get a one-line error saying what they are and what takes them
    (an exported ONNX model runs with ``slt run``; a NumPy array is an input; a checkpoint is
    imported with ``slt pack``). ``timesteps`` is needed for a netx file that does not state T.
    """
    kind = source_kind(path)
    where = os.fspath(path)
    if kind == "nir":
        from .exporters.nir import import_nir

        return import_nir(path)
    if kind == "netx":
        from .exporters.netx import import_netx

        return import_netx(path, timesteps=timesteps)
    if kind == "onnx":
        raise SltInputError(f"{where}: an exported ONNX model holds no ticket; run it with `slt run {where}` "
                            "(ONNX Runtime), or give the .slt it was exported from")
    if kind in ("npy", "npz"):
        raise SltInputError(f"{where}: a NumPy file, not a ticket; give the ticket (.slt or .nir) first and the "
                            "array with --input")
    if kind == "pytorch":
        raise SltInputError(f"{where}: a PyTorch checkpoint, not a ticket; import it with `slt pack {where} "
                            "--arch package.module:callable -o t.slt`")
    return load(path)


def run(ticket: Ticket, x: np.ndarray, target: str = registry.REFERENCE.name, record: bool = True,
        max_memory: int | str | None = None, **options: Any) -> Result:
    """Run ``ticket`` on ``x`` (``(batch, *features)``, or ``(T, batch, *features)`` for spike input).

    ``target``: any registered target (:mod:`slt_deploy.registry`: reference, cpu, torch,
    onnxruntime, lava, lava-float, fixed-reference). ``record``: keep every node's per-step output
    in ``Result.layers`` (else the output only). ``options``: the target's own (for example
    ``dtype=np.float64`` for the reference, ``backend="numpy"`` for cpu); unknown ones are errors.
    ``max_memory``: bytes (or ``"16G"``) the run may need by :func:`slt_deploy.untrusted.limits.run_bytes`
    (default ``SLT_MAX_MEMORY``, else min(8 GiB, 3/4 of physical memory)); above it, one SltInputError.
    """
    spec = registry.target(target)
    if not isinstance(ticket, Ticket):
        raise SltError(f"expected a Ticket, got {type(ticket).__name__}; load a file with slt_deploy.load")
    options = spec.checked_options(options)
    if not spec.available():
        raise SltError(spec.missing_message())
    check_memory(ticket, x, record, max_memory, flag="max_memory=")
    result = spec.load()(ticket, x, record=record, **spec.fixed, **options)
    result.target = spec.name
    return result


def check_memory(ticket: Ticket, x: Any, record: bool, limit: int | str | None, flag: str = "--max-memory") -> None:
    """The run-memory check (:mod:`slt_deploy.untrusted.limits`) for input ``x`` of ``ticket``."""
    from .untrusted.limits import check_run_memory

    shape = np.shape(x) if isinstance(x, np.ndarray) else getattr(x, "shape", None)
    lead = 1 if ticket.encoding.kind == "spikes" else 0
    if shape is None or len(shape) <= lead:
        return  # not an array of a usable shape: the target's input check names the problem
    check_run_memory(ticket, int(shape[lead]), record, limit, flag)


def export(ticket: Ticket, path: str | os.PathLike[str], to: str = "nir", **options: Any) -> Any:
    """Export ``ticket`` to ``path`` in a registered format (nir, onnx, netx, c); returns the exporter's report."""
    spec = registry.exporter(to)
    if not isinstance(ticket, Ticket):
        raise SltError(f"expected a Ticket, got {type(ticket).__name__}; load a file with slt_deploy.load")
    options = spec.checked_options(options)
    if not spec.available():
        raise SltError(spec.missing_message())
    return spec.load()(ticket, path, **spec.fixed, **options)


def from_torch(module: Any, example_input: Any = None, timesteps: int = 8, binarize: bool | Any = False,
               fold_bn: bool = True, **options: Any) -> Ticket:
    """Import a PyTorch / snnTorch / SpikingJelly model (see docs/importers.md).

    Options include ``encoding`` (``"direct"``, ``"spikes"``, or ``"rate"`` with ``seed=S``, default 0).
    """
    import difflib
    import inspect

    from .errors import SltImportError
    from .importers.torch import import_module

    known = [p for p in inspect.signature(import_module).parameters if p not in ("module", "example_input")]
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SltImportError(f"from_torch has no option {key!r}{hint} (options: {', '.join(known)})")
    return import_module(module, example_input, timesteps=timesteps, binarize=binarize, fold_bn=fold_bn, **options)
