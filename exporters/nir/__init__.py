"""NIR (Neuromorphic Intermediate Representation, ``nir`` 1.0) export and import.

    from slt_deploy.exporters.nir import export_nir, import_nir, to_nir_graph, from_nir_graph
    report = export_nir(ticket, "model.nir", dt=1e-4, allow_approximate=False)
    ticket = import_nir("model.nir")                  # or a nir.NIRGraph; timesteps=, dt= optional

The file is plain NIR that any NIR tool reads: dense float32 weights ``mask ⊙ value`` in
``Affine``/``Linear``/``Conv2d``, ``SumPool2d``/``AvgPool2d``/``Flatten``, neurons as
``LIF``/``IF``/``LI``/``I`` with full per-neuron arrays, under the forward-Euler
discretisation ``β = 1 − dt/τ``, ``r = τ/dt`` (snnTorch's). Graph and node metadata
(``slt.*``) carry the exact ticket (mask bits, binary α, int8 scales, β, resets, edge
order and recurrent flags, T, encoding), so slt reads its own files back bit for bit.

What NIR cannot state (subtract resets, SpikingJelly charges, β with no float32 τ, a
neuron bias with no synapse to fold into, a sum of three or more inputs) is refused with
:class:`~slt_deploy.errors.SltUnsupportedError` unless ``allow_approximate=True``; the
report then lists each approximation. MaxPool2d is always refused (no NIR primitive).
docs/targets-nir.md has the mapping table and how snnTorch reads these files.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ...errors import SltError, SltImportError, SltValidationError, SltWarning
from ...ir.graph import Encoding, Ticket, encoding_of
from ._common import DEFAULT_DT, DEFAULT_TIMESTEPS

__all__ = ["DEFAULT_DT", "DEFAULT_TIMESTEPS", "export_nir", "from_nir_graph", "import_nir", "to_nir_graph"]


def to_nir_graph(ticket: Ticket, dt: float = DEFAULT_DT, allow_approximate: bool = False) -> Any:
    """The ``nir.NIRGraph`` of ``ticket`` (refuses approximations unless ``allow_approximate``)."""
    from ._export import build_graph

    graph, _ = build_graph(ticket, dt, allow_approximate)
    return graph


def export_nir(ticket: Ticket, path: str | os.PathLike[str], dt: float = DEFAULT_DT,
               allow_approximate: bool = False) -> dict[str, Any]:
    """Write ``ticket`` to ``path`` as NIR (HDF5, atomically) and return a report.

    Report keys: ``format``, ``path``, ``bytes``, ``nir_version``, ``dt``, ``nodes``, ``edges``,
    ``exact`` (no approximation), ``approximations`` and ``consumer_notes`` (lists of strings).
    """
    from ._export import build_graph
    from ._file import write_graph

    graph, report = build_graph(ticket, dt, allow_approximate)
    size = write_graph(graph, path)
    return {"format": report.pop("format"), "path": os.fspath(path), "bytes": size, **report}


def from_nir_graph(graph: Any, timesteps: int | None = None, dt: float | None = None) -> Ticket:
    """Ticket from an in-memory ``nir.NIRGraph`` (see :func:`import_nir`)."""
    from ._import import import_graph

    return import_graph(graph, timesteps=timesteps, dt=dt, where="NIR graph")


def _warn_lost_reset(ticket: Ticket) -> None:
    """A graph from another tool states a zero reset for every nir.LIF; snnTorch's exporter writes its
    (default) subtract-reset Leaky that way too, so say so once: the import is exact to the file, the
    file may not be to the model it came from."""
    from ...ir.neurons import LIF

    if ticket.metadata.get("source") != "nir" or not any(isinstance(n, LIF) for n in ticket.nodes):
        return
    warnings.warn(
        "this NIR graph states a zero reset for its LIF layers (NIR's LIF resets v to v_reset); snnTorch's "
        "export_to_nir writes a Leaky with its default subtract reset the same way, so if the model used the "
        "subtract reset the file (and this ticket) fire differently from it; see docs/importers.md",
        SltWarning, stacklevel=3)


def import_nir(path_or_graph: Any, timesteps: int | None = None, dt: float | None = None,
               encoding: str | Encoding | None = None, seed: int | None = None) -> Ticket:
    """Ticket from a .nir file or a ``nir.NIRGraph``.

    A graph written by slt comes back exactly (``dt`` is then ignored). Other graphs are read
    with ``β = 1 − dt/τ`` where ``dt`` defaults to the graph metadata's ``dt``, else 1e-4
    (snnTorch's); T defaults to the stored value, else 8; the input encoding is the stored one,
    else ``direct``, unless ``encoding`` (``"direct"``, ``"spikes"``, ``"rate"`` with ``seed``) is given.
    Any problem with the file is a one-line :class:`SltFormatError` / :class:`SltImportError`.
    """
    from ._file import read_graph, settle_digest
    from ._import import import_graph

    try:
        import nir
    except ImportError:  # pragma: no cover - depends on the installation
        raise SltError("NIR support needs the 'nir' and 'h5py' packages: pip install 'slt-deploy[nir]'") from None
    if isinstance(path_or_graph, nir.NIRGraph):
        ticket = import_graph(path_or_graph, timesteps=timesteps, dt=dt, where="NIR graph")
    elif isinstance(path_or_graph, (str, os.PathLike)):
        graph, verdict = read_graph(path_or_graph)
        ticket = import_graph(graph, timesteps=timesteps, dt=dt, where=os.fspath(path_or_graph))
        settle_digest(verdict, os.fspath(path_or_graph))
    else:
        raise SltError(f"import_nir takes a path or a nir.NIRGraph, got {type(path_or_graph).__name__}")
    _warn_lost_reset(ticket)
    if encoding is None and seed is None:
        return ticket
    try:
        return ticket.with_encoding(encoding_of(encoding or ticket.encoding.kind, seed, keep=ticket.encoding))
    except SltValidationError as exc:
        raise SltImportError(str(exc)) from None
