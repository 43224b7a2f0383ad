"""The spiking neuron of the ECCV 2022 networks: SpikingJelly's ``LIFNode`` equations.

Kim et al.'s reference code builds VGG16 and ResNet19 from SpikingJelly
``LIFNode(tau=4/3, v_threshold=1.0, v_reset=0.0, surrogate_function=ATan(), detach_reset=True)``
(``decay_input=True``). :class:`SpikingLIF` computes the same single step, operation for
operation in float32, without needing SpikingJelly installed::

    h[t] = v[t-1] + (x[t] − v[t-1]) / τ          (v[-1] = 0)
    s[t] = h[t] − θ >= 0                         forward: Heaviside; backward: ATan surrogate
    v[t] = (1 − s̄[t]) · h[t] + s̄[t] · 0           s̄ = s detached (the reset carries no gradient)

The ATan surrogate (SpikingJelly's default, α = 2) has the gradient
``α / 2 / (1 + (π/2 · α · u)²)`` at ``u = h − θ``.

The input is cast to float32 first, so under mixed precision the synapses may run in
bfloat16/float16 while the membrane, the threshold test and the reset stay float32.

:meth:`SpikingLIF.slt_neuron` states the IR node it is, so :func:`slt_deploy.from_torch`
imports it exactly: charge ``decay_input`` with τ, threshold ``nextafter(θ, −inf)``
(``h ≥ θ`` is ``h > nextafter(θ, −inf)``), reset ``zero``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

TAU = 4.0 / 3.0
ATAN_ALPHA = 2.0


class _ATanSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        alpha = ctx.alpha
        return grad * (alpha / 2 / (1 + (math.pi / 2 * alpha * u).square())), None


class SpikingLIF(nn.Module):
    """SpikingJelly-style LIF (hard reset to 0, input decayed by 1/τ), one step per call.

    The membrane is plain module state (``self.v``), reset by
    :func:`slt_deploy.search.model.reset_state`; it is not a buffer, so it is neither saved
    nor synchronised between data-parallel ranks.
    """

    def __init__(self, tau: float = TAU, threshold: float = 1.0, alpha: float = ATAN_ALPHA) -> None:
        super().__init__()
        if not tau >= 1:
            raise ValueError(f"tau must be >= 1, got {tau}")
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.v: torch.Tensor | None = None
        # τ as a 0-dim float32 tensor that moves with the module: CUDA divides by a python scalar
        # through its reciprocal (another rounding), and a tensor made per call would copy to the GPU
        self.register_buffer("tau_tensor", torch.tensor(self.tau, dtype=torch.float32), persistent=False)

    def extra_repr(self) -> str:
        return f"tau={self.tau:.6g}, threshold={self.threshold:g}, reset=0, surrogate=ATan(alpha={self.alpha:g})"

    def reset(self) -> None:
        self.v = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        v = self.v
        if v is None or v.shape != x.shape:
            v = torch.zeros_like(x)
        h = v + (x - v) / self.tau_tensor
        spike = _ATanSpike.apply(h - self.threshold, self.alpha)
        s = spike.detach()
        self.v = (1.0 - s) * h + s * 0.0
        return spike

    def slt_neuron(self, name: str, shape: tuple[int, ...], path: str) -> Any:
        """The IR layer this module computes (used by :func:`slt_deploy.from_torch`)."""
        from ..ir.neurons import LIF

        theta = np.float32(self.threshold)
        return LIF(name, shape=shape, charge="decay_input", tau=np.float32(self.tau),
                   threshold=np.nextafter(theta, np.float32(-np.inf)), reset="zero", reset_amount=theta)
