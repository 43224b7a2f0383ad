"""Masks and binary weights: what a forward pass uses instead of the latent weights.

- pruned:  ``w ⊙ mask`` (a pruned weight gets no gradient, and its latent value is zeroed
  after every optimiser step, so pruned weights stay exactly 0);
- binary:  ``α[o] · sign(w) ⊙ mask`` with ``α[o]`` the mean |w| of the kept weights of output
  channel o (XNOR-Net); the backward pass is straight-through (``∂L/∂w = ∂L/∂ŵ ⊙ mask``).
  The forward value is exactly ``α·(±1)`` in float32, so the trained network and the
  exported ticket use the same weights.

Global magnitude pruning (:func:`prune_masks`) and late rewinding (:func:`rewind_state`)
live here too.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .model import prunable, reset_state

Masks = dict[str, torch.Tensor]


def binary_value(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``α[o] · sign(w)`` on kept entries, 0 elsewhere; ``w == 0`` counts as positive."""
    m = mask.to(w.dtype)
    dims = tuple(range(1, w.ndim))
    alpha = (w * m).abs().sum(dim=dims, keepdim=True) / m.sum(dim=dims, keepdim=True).clamp(min=1)
    sign = torch.where(w < 0, -1.0, 1.0).to(w.dtype)
    return torch.where(m > 0, alpha * sign, torch.zeros((), dtype=w.dtype))


class _BinarySTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(mask)
        return binary_value(w, mask)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return grad * mask.to(grad.dtype), None


Binary = bool | frozenset[str]
"""``True``: every weight tensor binary; a set of names: only those (e.g. spikformer's ConvPEP)."""


def is_binary(binary: Binary, name: str) -> bool:
    """Whether weight tensor ``name`` is binary under ``binary``."""
    return binary is True or (isinstance(binary, frozenset) and name in binary)


def effective_weights(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, binary: Binary) -> dict[str, Any]:
    """The weight tensors a forward pass uses (see the module docstring); differentiable."""
    out: dict[str, Any] = {}
    for name, w in prunable(model).items():
        m = None if masks is None else masks.get(name)
        if is_binary(binary, name):
            out[name] = _BinarySTE.apply(w, torch.ones_like(w, dtype=torch.bool) if m is None else m)
        elif m is not None:
            out[name] = w * m.to(w.dtype)
    return out


def materialize(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, binary: Binary) -> nn.Module:
    """A copy of ``model`` whose weights are the effective ones (exactly α·sign for binary), in eval mode."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        eff = effective_weights(model, masks, binary)
        for name, w in prunable(out).items():
            if name in eff:
                w.copy_(eff[name])
    reset_state(out)
    return out.eval()


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None) -> None:
    """Zero the latent weights that ``masks`` prunes."""
    if not masks:
        return
    with torch.no_grad():
        for name, w in prunable(model).items():
            if name in masks:
                w.mul_(masks[name].to(w.dtype))


def sparsity(masks: Mapping[str, torch.Tensor] | None, model: nn.Module) -> float:
    """Fraction of pruned entries over every prunable weight tensor."""
    weights = prunable(model)
    total = sum(w.numel() for w in weights.values())
    if not masks:
        return 0.0
    kept = sum(int(masks[n].sum()) if n in masks else w.numel() for n, w in weights.items())
    return 1.0 - kept / total


def prune_masks(model: nn.Module, keep: int, masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Global magnitude pruning: keep the ``keep`` largest |w| over every prunable tensor
    (among the entries ``masks`` still keeps)."""
    from .rules import global_magnitude_keep

    weights = prunable(model)
    mags = {n: w.detach().abs().double().cpu().numpy() for n, w in weights.items()}
    alive = None if masks is None else {n: masks[n].cpu().numpy() if n in masks else np.ones(w.shape, bool)
                                        for n, w in weights.items()}
    kept = global_magnitude_keep(mags, keep, alive)
    return {n: torch.from_numpy(k.copy()) for n, k in kept.items()}


def rewind_state(model: nn.Module, saved: Mapping[str, torch.Tensor]) -> None:
    """Late rewinding: weights, biases and BatchNorm affine parameters go back to ``saved``;
    BatchNorm running statistics stay as they are (Kim et al.)."""
    keep_running = ("running_mean", "running_var", "num_batches_tracked")
    state = {k: v for k, v in saved.items() if not k.endswith(keep_running)}
    model.load_state_dict(state, strict=False)
