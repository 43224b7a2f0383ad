"""Per-layer size report of a packed ticket: bytes, bits per synapse, entropy bound."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import bits
from ..ir.graph import Ticket
from .encodings import matrix_shape

VALUE_BITS = {"binary": 0, "int8": 8, "float32": 32}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def entropy_bound(kind: str, density: float) -> float:
    """Bits per synapse of an ideal code: H(p) + p for binary weights (mask + one sign bit).

    For int8 / float32 weights the bound used is H(p) + p·bits_per_value (8 or 32): the
    mask entropy plus the kept values stored verbatim (values are not entropy-coded).
    """
    if kind == "binary":
        return float(bits.entropy_bound_bits_per_synapse(density))
    return float(bits.binary_entropy(density)) + density * VALUE_BITS[kind]


def layer_rows(graph: dict[str, Any], tensors: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One report row per weighted node of a graph JSON object, in node order."""
    rows = []
    for node in graph["nodes"]:
        w = node.get("weights")
        if w is None:
            continue
        keys = list(w["tensors"].values()) + ([w["scale"]["tensor"]] if w["scale"] else [])
        scale_bytes = int(tensors[w["scale"]["tensor"]].nbytes) if w["scale"] else 0
        nbytes = int(sum(tensors[k].nbytes for k in keys))
        out_rows, cols = matrix_shape(tuple(w["shape"]))
        n = out_rows * cols
        density = w["nnz"] / n if n else 0.0
        # The entropy bound H(p)+p prices synapses: mask and sign (or value) bits. Per-channel
        # scales are per-neuron parameters like thresholds, reported apart in scale_bytes.
        bps = (nbytes - scale_bytes) * 8 / n if n else 0.0
        bound = entropy_bound(w["kind"], density)
        rows.append({
            "name": node["name"],
            "layer": node["kind"],
            "kind": w["kind"],
            "shape": tuple(w["shape"]),
            "synapses": n,
            "nnz": w["nnz"],
            "density": density,
            "encoding": w["encoding"],
            "bytes": nbytes,
            "scale_bytes": scale_bytes,
            "bits_per_synapse": bps,
            "bits_per_synapse_total": nbytes * 8 / n if n else 0.0,
            "entropy_bound_bits_per_synapse": bound,
            "ratio_vs_fp32": _ratio(4 * n, nbytes),
            "ratio_vs_entropy_bound": _ratio(bps, bound),
        })
    return rows


def layer_report(source: Ticket | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Per weighted layer: encoding, bytes, bits/synapse and ratios (see docs/format.md).

    ``source`` is a Ticket (encoded in memory as :func:`write_slt` would) or a .slt path
    (read and verified). Keys: ``name``, ``layer`` (node kind), ``kind`` (binary / int8 /
    float32), ``shape``, ``synapses``, ``nnz``, ``density``, ``encoding``, ``bytes`` (all
    weight tensors of the layer: mask/index, signs/values and the scale), ``scale_bytes``,
    ``bits_per_synapse`` ((bytes − scale_bytes)·8 / synapses: the code for masks and
    signs/values, what the entropy bound prices), ``bits_per_synapse_total`` (bytes·8 /
    synapses, scales included), ``entropy_bound_bits_per_synapse``,
    ``ratio_vs_fp32`` (dense fp32 bytes / bytes) and ``ratio_vs_entropy_bound``
    (bits_per_synapse / bound). A ratio with a zero denominator is ``None``.
    """
    from .container import read_verified
    from .schema import ticket_to_graph

    if isinstance(source, Ticket):
        graph, tensors = ticket_to_graph(source)
    else:
        _, graph, tensors = read_verified(source)
    return layer_rows(graph, tensors)


def inspect_file(path: str | os.PathLike[str]) -> tuple[Ticket, list[dict[str, Any]]]:
    """Read and verify a .slt once: its ticket and the :func:`layer_report` rows of the file's tensors."""
    from .container import read_verified

    ticket, graph, tensors = read_verified(path)
    return ticket, layer_rows(graph, tensors)


def entropy_table(sizes: tuple[int, ...] = (256, 1024), densities: tuple[float, ...] = (0.01, 0.03, 0.1, 0.5, 1.0),
                  seed: int = 0) -> list[dict[str, Any]]:
    """Measure bits/synapse of random binary layers (size x size) against H(p) + p.

    Each layer is packed twice: with one scale for the whole layer (stored once) and with a
    distinct α per output channel (32 more bits per row, i.e. 32/size bits per synapse).
    """
    from ..ir.graph import Edge
    from ..ir.nodes import Input, Linear, Output
    from ..ir.weights import BinaryWeights

    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        for p in densities:
            mask, neg = rng.random((size, size)) < p, rng.random((size, size)) < 0.5
            row: dict[str, Any] = {"size": size, "p": p}
            for label, alpha in (("layer", np.float32(0.5)), ("channel", rng.random(size).astype(np.float32))):
                t = Ticket((Input("in", shape=(size,)), Linear("fc", BinaryWeights(mask, neg, alpha)), Output("out")),
                           (Edge("in", "fc"), Edge("fc", "out")), 1)
                (r,) = layer_report(t)
                row.update({"density": r["density"], "encoding": r["encoding"],
                            "bound": r["entropy_bound_bits_per_synapse"],
                            f"bits_{label}": r["bits_per_synapse_total"],
                            f"ratio_{label}": r["bits_per_synapse_total"] / r["entropy_bound_bits_per_synapse"]})
            out.append(row)
    return out

