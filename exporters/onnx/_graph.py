"""One ONNX graph under construction: nodes, initializers and unique names.

Names come from a counter shared by the outer graph and the Loop body, so every tensor and
node name in the model is unique and the same ticket always gives the same names (the
exported bytes are reproducible: tests/test_onnx.py pins them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np


class Graph:
    """Nodes and initializers of one ONNX graph; names come from a counter shared with subgraphs."""

    def __init__(self, onnx: Any, counter: list[int]) -> None:
        self.onnx = onnx
        self.counter = counter
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def fresh(self, hint: str) -> str:
        self.counter[0] += 1
        return f"{hint}_{self.counter[0]}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, name=self.fresh("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def named_op(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        node = self.onnx.helper.make_node(op_type, inputs, outputs, name=self.fresh("n_" + op_type), **attrs)
        self.nodes.append(node)

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    def i64(self, values: list[int] | tuple[int, ...], hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint)

    def scalar(self, value: float, dtype: type, hint: str = "c") -> str:
        return self.const(np.asarray(value, dtype=dtype), hint)


def ident(text: str) -> str:
    """A C-identifier fragment of a node name (ONNX names should be C90 identifiers)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return s if s and not s[0].isdigit() else f"_{s}"


@dataclass
class State:
    """Names of a neuron layer's state tensors at one step: membrane ``v``, previous spikes ``s``."""

    v: str
    s: str | None = None


__all__ = ["Graph", "State", "ident"]
