"""A small Spikformer for the ticket search (``--arch spikformer``): snnTorch ``Leaky`` neurons,
written the usual PyTorch way so that :func:`slt_deploy.from_torch` imports it exactly.

For 8×8 digits (1 channel), ``patch`` = 2 gives 4×4 = 16 tokens of ``dim`` features:

- ConvPEP (convolutional patch embedding): ``P = Leaky(BN2d(Conv2d(C, dim, patch, stride patch)))``
  on the analog image (the only layer that sees analog input), plus Spikformer's relative-position
  embedding ``Leaky(BN2d(Conv2d(dim, dim, 3, pad 1)))`` added to it (without it the mean over tokens
  sees a bag of 2×2 patches with no position), then ``flatten(2).transpose(1, 2)`` -> tokens ``(16, dim)``.
- ``blocks`` × [SSA, MLP], each with a residual join:
  SSA (Spikformer's spiking self-attention, no softmax): ``Q, K, V = Leaky(BN1d(Linear(x)))`` per
  head, ``A = Leaky_0.5((Q·Kᵀ·0.125)·V)``, ``x + Leaky(BN1d(Linear(A)))``;
  MLP: ``x + Leaky(BN1d(Linear(Leaky(BN1d(Linear(x))))))`` with ``2·dim`` hidden features.
- head: mean over tokens -> ``Linear(dim, classes)`` -> ``Leaky`` (the output spikes, whose counts
  the loss reads as for the other snnTorch archs).

Token pruning (MultiSp's patch-number sparsity, ``--token-keep r``): :func:`important_tokens`
picks the patches to keep before training, and ``x.index_select(1, kept)`` after the embedding
drops the others (a ``Select`` node in the ticket: every later layer works on fewer tokens).

BatchNorm1d runs over the channels of the token tensor (``bn(y.transpose(-1, -2)).transpose(-1, -2)``)
and folds into the Linear at export. Every Leaky resets to zero with the search's β and θ;
the attention Leaky fires at θ = 0.5 as in the reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

ATTENTION_SCALE = 0.125
ATTENTION_THRESHOLD = 0.5
CONVPEP_WEIGHTS = frozenset({"pep.weight", "rpe.weight"})
"""The convolutional patch embedding's weights: what ``--binary-scope convpep`` binarizes (MultiSp)."""


class _TokenLinear(nn.Module):
    """``Leaky(BN1d(Linear(x)))`` on tokens ``(B, N, in)``."""

    def __init__(self, d_in: int, d_out: int, neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.fc, self.bn, self.lif = nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.bn(self.fc(x).transpose(-1, -2)).transpose(-1, -2))


class Block(nn.Module):
    """SSA then MLP, each added to its input."""

    def __init__(self, dim: int, heads: int, neuron: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (_TokenLinear(dim, dim, neuron) for _ in range(3))
        self.attn_lif = neuron(threshold=ATTENTION_THRESHOLD)
        self.proj = _TokenLinear(dim, dim, neuron)
        self.mlp1, self.mlp2 = _TokenLinear(dim, 2 * dim, neuron), _TokenLinear(2 * dim, dim, neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = (f(x).reshape(b, n, h, d // h).permute(0, 2, 1, 3) for f in (self.q, self.k, self.v))
        a = self.attn_lif((q @ k.transpose(-2, -1)) * ATTENTION_SCALE @ v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp2(self.mlp1(x))


class Spikformer(nn.Module):
    """ConvPEP -> blocks -> mean over tokens -> Linear -> Leaky (see the module docstring)."""

    def __init__(self, input_shape: tuple[int, int, int], classes: int, dim: int, heads: int, blocks: int,
                 patch: int, neuron: Callable[..., nn.Module]) -> None:
        super().__init__()
        c, h, w = input_shape
        if h % patch or w % patch or dim % heads:
            raise ValueError(f"spikformer: {h}x{w} images need a patch size dividing them and dim % heads == 0")
        self.pep, self.pep_bn, self.pep_lif = nn.Conv2d(c, dim, patch, stride=patch), nn.BatchNorm2d(dim), neuron()
        self.rpe, self.rpe_bn, self.rpe_lif = nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), neuron()
        self.blocks = nn.ModuleList(Block(dim, heads, neuron) for _ in range(blocks))
        self.head, self.out = nn.Linear(dim, classes), neuron()
        self.patch = patch
        self.register_buffer("kept", None)

    def keep_tokens(self, indices: np.ndarray) -> None:
        """Keep only these tokens (patches) after the embedding: a token mask (``Select`` in the ticket)."""
        self.kept = torch.as_tensor(np.sort(np.asarray(indices, np.int64)), device=self.head.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pep_lif(self.pep_bn(self.pep(x)))
        t = (p + self.rpe_lif(self.rpe_bn(self.rpe(p)))).flatten(2).transpose(1, 2)
        if self.kept is not None:
            t = t.index_select(1, self.kept)
        for block in self.blocks:
            t = block(t)
        return self.out(self.head(t.mean(dim=1)))


def important_tokens(x_train: np.ndarray, patch: int, keep: float) -> np.ndarray:
    """The token-pruning rule: keep the ``ceil(keep · N)`` patches with the largest mean input intensity.

    Importance of patch ``i`` = mean over the training images of the sum of its ``patch × patch``
    pixels (all channels): the analog signal ConvPEP can see there. Ties go to the lower index;
    the kept indices are returned sorted (row-major patch order).
    """
    x = np.asarray(x_train, np.float64)
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // patch, patch, w // patch, patch).sum(axis=(1, 3, 5)).mean(axis=0).reshape(-1)
    count = max(1, int(np.ceil(keep * blocks.size - 1e-9)))
    order = np.lexsort((np.arange(blocks.size), -blocks))
    return np.sort(order[:count])


__all__ = ["ATTENTION_SCALE", "ATTENTION_THRESHOLD", "CONVPEP_WEIGHTS", "Block", "Spikformer", "important_tokens"]
