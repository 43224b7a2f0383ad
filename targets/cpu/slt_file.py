"""Loading a .slt file for the CPU runtime, with bit planes memory-mapped where possible.

The file is first read and verified by :mod:`slt_deploy.format` (every malformed file is a
one-line :class:`~slt_deploy.errors.SltFormatError`). Then, for binary Linear layers whose
stored encoding already *is* a runtime bit plane, the runtime maps that tensor from the
file instead of keeping a copy:

- ``dense-signs`` (every synapse kept): the ``signs`` tensor is the ``neg`` plane;
- ``bitmask``: the ``mask`` tensor is the ``mask`` plane (``neg`` is built from the
  packed signs of kept synapses, 1 bit per synapse).

Mapped pages are shared with the page cache and read on demand. Each mapped tensor is
compared with the verified content (guarding against the file changing in between).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from slt_deploy import bits
from slt_deploy.errors import SltFormatError
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.nodes import Linear

from .stores import Coo, PlaneStore


def read_ticket(path: str | os.PathLike[str]) -> tuple[Ticket, dict[str, PlaneStore]]:
    """The verified ticket and the memory-mapped plane stores of its eligible layers."""
    from slt_deploy.format.container import read_verified

    ticket, graph, _ = read_verified(path)
    try:
        planes = _mapped_planes(path, ticket, graph)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SltFormatError(f"{os.fspath(path)}: cannot map tensors ({exc})") from None
    return ticket, planes


def _tensor_offsets(path: str | os.PathLike[str]) -> tuple[int, dict[str, Any]]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return 8 + n, header


def _mapped_planes(path: str | os.PathLike[str], ticket: Ticket, graph: dict[str, Any]) -> dict[str, PlaneStore]:
    base, header = _tensor_offsets(path)
    nodes = {d["name"]: d for d in graph["nodes"]}
    out: dict[str, PlaneStore] = {}
    for node in ticket.nodes:
        if not isinstance(node, Linear) or node.weights.kind != "binary":
            continue
        meta = nodes[node.name]["weights"]
        enc, roles = meta["encoding"], meta["tensors"]
        o, k = node.weights.mask.shape
        shape = (o, bits.words_per_row(k))
        if enc == "dense-signs":
            neg = _map(path, base, header, roles["signs"], shape)
            if not np.array_equal(neg, bits.pack_rows(node.weights.negative)):
                raise ValueError(f"tensor '{roles['signs']}' changed while loading")
            out[node.name] = PlaneStore((o, k), neg, None, mapped=True)
        elif enc == "bitmask":
            mask = _map(path, base, header, roles["mask"], shape)
            if not np.array_equal(mask, bits.pack_rows(node.weights.mask)):
                raise ValueError(f"tensor '{roles['mask']}' changed while loading")
            neg = PlaneStore.from_coo(Coo.from_weights(node.weights)).neg
            out[node.name] = PlaneStore((o, k), neg, mask, mapped=True)
    return out


def _map(path: str | os.PathLike[str], base: int, header: dict[str, Any], key: str,
         shape: tuple[int, int]) -> np.ndarray:
    entry = header[key]
    begin, end = entry["data_offsets"]
    if entry["dtype"] != "U64" or tuple(entry["shape"]) != shape or end - begin != 8 * shape[0] * shape[1]:
        raise ValueError(f"tensor '{key}' is not a {shape} uint64 plane")
    if end == begin:
        return np.zeros(shape, dtype=bits.WORD_DTYPE)
    return np.memmap(path, dtype=bits.WORD_DTYPE, mode="r", offset=base + begin, shape=shape)
