"""ONNX graphs read as untrusted input: bounded loops and finite parameters.

The exporter's digest (``slt_deploy.sha256``) catches accidental damage, but anybody can
recompute a sha256, so a hostile model is checked on its own terms before ONNX Runtime runs it:

- every ``Loop`` (in any subgraph) has a constant trip count ``M`` (an initializer or a
  ``Constant``) equal to the ticket's T from the metadata: ``M = 10**12`` ran until memory was
  gone, and a Loop without ``M`` is a while-loop that need not end;
- every floating-point constant (initializers, ``Constant`` values, tensor attributes) and every
  float attribute is finite: NaN/inf beta, bias or threshold ran silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import SltError, SltFormatError


def _graphs(graph: Any) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _tensors(graph: Any) -> Iterator[tuple[str, Any]]:
    """(name, TensorProto) of every constant tensor of ``graph`` (not its subgraphs)."""
    for t in graph.initializer:
        yield t.name, t
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield (node.output[0] if node.op_type == "Constant" and node.output else attr.t.name), attr.t
            for t in attr.tensors:
                yield t.name, t


def check_onnx_graph(model: Any, timesteps: int, where: str, *, error: type[SltError] = SltFormatError) -> None:
    """Refuse Loops whose trip count is not the constant T and non-finite float parameters."""
    from onnx import numpy_helper

    constants: dict[str, np.ndarray] = {}
    for graph in _graphs(model.graph):
        for name, tensor in _tensors(graph):
            try:
                arr = numpy_helper.to_array(tensor)
            except Exception as exc:  # noqa: BLE001 - malformed tensor payloads
                raise error(f"{where}: tensor '{name[:60]}' cannot be read ({str(exc).splitlines()[0][:120]})") \
                    from None
            if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
                raise error(f"{where}: tensor '{name[:60]}' holds NaN or inf values; the model is corrupt or hostile")
            constants[name] = arr
        for node in graph.node:
            for attr in node.attribute:
                if not (np.isfinite(attr.f) and all(np.isfinite(v) for v in attr.floats)):
                    raise error(f"{where}: node '{node.name[:60]}' attribute '{attr.name}' is NaN or inf")
    for graph in _graphs(model.graph):
        for node in graph.node:
            if node.op_type == "Loop":
                _check_trip(node, constants, timesteps, where, error)


def _check_trip(node: Any, constants: dict[str, np.ndarray], timesteps: int, where: str,
                error: type[SltError]) -> None:
    trip = node.input[0] if node.input else ""
    if not trip:
        raise error(f"{where}: Loop '{node.name[:60]}' has no trip count (a while-loop); slt models loop T times")
    value = constants.get(trip)
    if value is None or value.size != 1 or value.dtype.kind not in "iu":
        raise error(f"{where}: Loop '{node.name[:60]}' trip count '{trip[:60]}' is not a constant integer")
    if int(value.reshape(())) != timesteps:
        raise error(f"{where}: Loop '{node.name[:60]}' runs {int(value.reshape(()))} times, the model's metadata "
                    f"says T={timesteps}; the model is corrupt or hostile")
