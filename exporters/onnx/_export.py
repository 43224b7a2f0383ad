"""The public entry points: :func:`build_model` (in memory) and :func:`export_onnx` (a file + report)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...errors import SltError, SltUnsupportedError
from ...ir.graph import Ticket
from ._builder import ModelBuilder
from ._meta import (
    INPUT_NAME,
    INPUT_NOTES,
    IR_VERSION,
    MAX_MODEL_BYTES,
    MODES,
    OPSET,
    OUTPUT_NAME,
    RECORDS,
    WEIGHT_STORAGE,
    import_onnx,
    one_line,
)


@dataclass
class BuiltModel:
    """An ONNX model plus what the exporter knows about it."""

    model: Any
    mode: str
    input_dims: list[Any]
    output_dims: list[Any]
    records: list[dict[str, Any]]
    layers: list[dict[str, Any]]


def build_model(ticket: Ticket, mode: str = "loop", weights: str = "auto", record: str = "neurons",
                check: bool = True) -> BuiltModel:
    """Build (and by default check with ``full_check=True``) the ONNX model of ``ticket``."""
    onnx = import_onnx()
    if mode not in MODES:
        raise SltError(f"ONNX mode must be one of {', '.join(MODES)}, got {mode!r}")
    if weights not in WEIGHT_STORAGE:
        raise SltError(f"ONNX weight storage must be one of {', '.join(WEIGHT_STORAGE)}, got {weights!r}")
    if record not in RECORDS:
        raise SltError(f"ONNX record must be one of {', '.join(RECORDS)}, got {record!r}")
    builder = ModelBuilder(onnx, ticket, mode, weights, record)
    model = builder.build()
    size = model.ByteSize()
    if size > MAX_MODEL_BYTES:
        raise SltUnsupportedError(
            f"the ONNX model would be {size:,} bytes, over protobuf's 2 GiB limit; "
            "use weights='auto' or a smaller ticket"
        )
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:  # noqa: BLE001 - a failure here is a bug in this exporter
            raise SltError(f"internal error: exported ONNX model fails the checker: {one_line(exc)}") from None
    return BuiltModel(model, mode, builder.input_dims, builder.output_dims, builder.record_info, builder.layer_info)


def export_onnx(ticket: Ticket, path: str | os.PathLike[str], mode: str = "loop", weights: str = "auto",
                record: str = "neurons") -> dict[str, Any]:
    """Write ``ticket`` as an ONNX model to ``path`` (atomically); returns a report dict.

    ``mode``: ``loop`` (one ONNX Loop, the default) or ``unrolled`` (T copies of the step).
    ``weights``: ``auto`` (smallest per layer), ``dense``, ``bitmask``, ``index``, or
    ``float32`` (dense fp32, the uncompressed baseline).
    ``record``: extra outputs, ``neurons`` (every neuron layer: spike counts), ``all`` (every
    node) or ``output`` (none). The model passes ``onnx.checker.check_model(full_check=True)``.
    """
    from ...atomic import atomic_write_bytes

    onnx = import_onnx()
    built = build_model(ticket, mode=mode, weights=weights, record=record)
    data = built.model.SerializeToString()
    atomic_write_bytes(path, data)
    stored = sum(layer["bytes"] for layer in built.layers)
    dense_w = sum(layer["dense_fp32_bytes"] for layer in built.layers)
    # The same file with every layer stored as dense fp32 codes (weights="float32" builds it;
    # the estimate is within 0.1% and costs nothing for big tickets).
    dense_bytes = len(data) - stored + dense_w
    return {
        "format": "onnx",
        "path": os.fspath(path),
        "opset": OPSET,
        "ir_version": IR_VERSION,
        "onnx_version": onnx.__version__,
        "mode": built.mode,
        "weights": weights,
        "record": record,
        "timesteps": ticket.timesteps,
        "input": {"name": INPUT_NAME, "shape": built.input_dims, "encoding": ticket.encoding.kind,
                  "seed": ticket.encoding.seed, "rate_code": ticket.encoding.code,
                  "note": INPUT_NOTES[ticket.encoding.kind]},
        "output": {"name": OUTPUT_NAME, "shape": built.output_dims, "spiking": ticket.output_is_spiking},
        "records": built.records,
        "nodes": _count_nodes(built.model.graph),
        "file_bytes": len(data),
        "dense_fp32_file_bytes": dense_bytes,
        "ratio_vs_dense_fp32": (dense_bytes / len(data)) if data else None,
        "weight_bytes": stored,
        "dense_fp32_weight_bytes": dense_w,
        "weight_ratio_vs_dense_fp32": (dense_w / stored) if stored else None,
        "layers": built.layers,
        "checked": "onnx.checker.check_model(full_check=True) passed",
        "runtime_note": "run with graph optimizations disabled (ORT_DISABLE_ALL) for exact float32 rounding",
    }


def _count_nodes(graph: Any) -> int:
    """Nodes of a graph including those of its subgraphs (the Loop body)."""
    total = 0
    for node in graph.node:
        total += 1
        for attr in node.attribute:
            if attr.HasField("g"):
                total += _count_nodes(attr.g)
            for sub in attr.graphs:
                total += _count_nodes(sub)
    return total


__all__ = ["BuiltModel", "build_model", "export_onnx"]
