"""The torch target's rules for the token and attention kinds (:mod:`slt_deploy.ir.tokens`).

As the reference (:mod:`slt_deploy.tokens_ref`): MatMul and Reduce accumulate in float64 and
round once to the working precision (exact whenever the reference's certificate holds, always
for spike operands), MatMul then multiplies by its power-of-two scale; Mul is one product in
the working precision; views only move values. Tensors carry the batch axis first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slt_deploy.ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose

Step = Callable[[list[Any], int], Any]


def view(node: Reshape | Transpose | Select, r: Any) -> Step:
    """Reshape / Transpose / Select on the per-sample axes (no arithmetic)."""
    if isinstance(node, Reshape):
        return lambda ins, t: ins[0].reshape(ins[0].shape[0], *node.shape)
    if isinstance(node, Transpose):
        perm = (0, *(p + 1 for p in node.perm))
        return lambda ins, t: ins[0].permute(*perm).contiguous()
    idx = r.torch.tensor(node.indices, dtype=r.torch.int64, device=r.device)
    return lambda ins, t: ins[0].index_select(node.axis + 1, idx)


def matmul(node: MatMul, r: Any) -> Step:
    """float64 ``a @ b`` rounded once, then ``· 2^e``."""
    f64 = r.torch.float64

    def step(ins: list[Any], t: int) -> Any:
        return r.torch.matmul(ins[0].to(f64), ins[1].to(f64)).to(r.dtype) * node.scale

    return step


def mul(node: Mul, r: Any) -> Step:
    return lambda ins, t: ins[0].to(r.dtype) * ins[1].to(r.dtype)


def reduce(node: Reduce, r: Any) -> Step:
    """float64 sum over the axis rounded once; ``mean`` divides by the axis length in the working precision."""
    axis = node.axis + 1

    def step(ins: list[Any], t: int) -> Any:
        total = ins[0].to(r.torch.float64).sum(dim=axis, keepdim=node.keepdims).to(r.dtype)
        return total / float(ins[0].shape[axis]) if node.op == "mean" else total

    return step


__all__ = ["matmul", "mul", "reduce", "view"]
