"""Surrogate-gradient training with frozen masks and binary weights (torch + snnTorch).

Weights are trained as latent full-precision tensors in an ordinary ``nn.Sequential``. The
weights a forward pass uses are computed from them per batch and substituted with
``torch.func.functional_call``:

- pruned:  ``w ⊙ mask`` (a pruned weight gets no gradient, and its latent value is zeroed
  after every optimiser step, so pruned weights stay exactly 0);
- binary:  ``α[o] · sign(w) ⊙ mask`` with ``α[o]`` the mean |w| of the kept weights of output
  channel o (XNOR-Net); the backward pass is straight-through (``∂L/∂w = ∂L/∂ŵ ⊙ mask``).
  The forward value is exactly ``α·(±1)`` in float32, so the trained network and the
  exported ticket use the same weights.

Every epoch shuffles with a generator seeded from ``(seed, key, epoch)``: a search resumed
from a checkpoint repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .model import prunable, reset_state

Masks = dict[str, torch.Tensor]


# ------------------------------------------------------------------ weights
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


def effective_weights(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, binary: bool) -> dict[str, Any]:
    """The weight tensors a forward pass uses (see the module docstring); differentiable."""
    out: dict[str, Any] = {}
    for name, w in prunable(model).items():
        m = None if masks is None else masks.get(name)
        if binary:
            out[name] = _BinarySTE.apply(w, torch.ones_like(w, dtype=torch.bool) if m is None else m)
        elif m is not None:
            out[name] = w * m.to(w.dtype)
    return out


def materialize(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, binary: bool) -> nn.Module:
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


# ------------------------------------------------------------------ progress
class Progress:
    """Rich progress bars on a console (``None`` or not a terminal: no bars)."""

    def __init__(self, console: Any = None) -> None:
        self.console = console

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        if self.console is None:
            yield lambda: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        with RichProgress(TextColumn("   {task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                          disable=not getattr(self.console, "is_terminal", False)) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


# ------------------------------------------------------------------ trainer
def epoch_seed(seed: int, key: tuple[Any, ...], epoch: int) -> int:
    """A shuffling seed from the run seed, a stage key (strings/ints) and the epoch."""
    digest = hashlib.sha256(repr((int(seed), tuple(str(k) for k in key), int(epoch))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class Trainer:
    """Adam on the cross-entropy of output spike counts over T steps (direct encoding)."""

    def __init__(self, lr: float = 2e-3, batch_size: int = 128, seed: int = 0, progress: Progress | None = None,
                 eval_batch: int = 512) -> None:
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress or Progress(None)
        self.eval_batch = eval_batch

    def counts(self, model: nn.Module, x: torch.Tensor, timesteps: int,
               weights: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Output spike counts over ``timesteps`` steps, the input repeated every step."""
        reset_state(model)
        total: Any = 0
        for _ in range(timesteps):
            out = functional_call(model, dict(weights), (x,)) if weights else model(x)
            total = total + out
        return total

    def cumulative_counts(self, model: nn.Module, x: torch.Tensor, timesteps: int,
                          weights: Mapping[str, Any] | None = None) -> list[torch.Tensor]:
        """Counts after 1, 2, …, ``timesteps`` steps (one run: step t does not depend on T)."""
        reset_state(model)
        total: Any = 0
        seen = []
        for _ in range(timesteps):
            out = functional_call(model, dict(weights), (x,)) if weights else model(x)
            total = total + out
            seen.append(total)
        return seen

    def new_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    def fit(self, model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, timesteps: int,
            masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False, key: tuple[Any, ...] = (),
            description: str = "train", on_epoch: Callable[[int], None] | None = None,
            optimizer: torch.optim.Optimizer | None = None, first_epoch: int = 1, freeze_bn: bool = False) -> None:
        """Train ``epochs`` epochs; ``on_epoch(e)`` runs after epoch e (counted from ``first_epoch``).

        A network with BatchNorm gets its running statistics recomputed at the end
        (:meth:`recalibrate`), so that evaluation and the folded ticket see statistics of the
        final weights rather than of the last few batches. ``freeze_bn`` instead recomputes
        them first and then keeps BatchNorm in eval mode (fixed statistics, affine parameters
        still trained): training then optimises exactly the function the exported ticket
        computes, with BatchNorm folded.
        """
        xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
        opt = optimizer if optimizer is not None else self.new_optimizer(model)
        loss_fn = nn.CrossEntropyLoss()
        batches = -(-len(xt) // self.batch_size)
        apply_masks(model, masks)
        if freeze_bn:
            self.recalibrate(model, x, timesteps, masks, binary)
        with self.progress.task(description, epochs * batches) as advance:
            for epoch in range(first_epoch, first_epoch + epochs):
                model.train()
                if freeze_bn:
                    for m in model.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
                gen = torch.Generator().manual_seed(epoch_seed(self.seed, key, epoch))
                order = torch.randperm(len(xt), generator=gen)
                for start in range(0, len(xt), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    opt.zero_grad(set_to_none=True)
                    weights = effective_weights(model, masks, binary)
                    loss = loss_fn(self.counts(model, xt[idx], timesteps, weights), yt[idx])
                    loss.backward()
                    opt.step()
                    apply_masks(model, masks)
                    advance()
                if on_epoch is not None:
                    on_epoch(epoch)
        if not freeze_bn:
            self.recalibrate(model, x, timesteps, masks, binary)
        reset_state(model)

    @torch.no_grad()
    def recalibrate(self, model: nn.Module, x: np.ndarray, timesteps: int,
                    masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False) -> None:
        """Set BatchNorm running statistics to the plain average of the batch statistics over
        ``x`` (in order, ``eval_batch`` samples at a time) and every time step, with the current
        effective weights. Without it the exponential average (momentum 0.1, applied T times
        per batch) is dominated by the last, possibly short, batch of an epoch."""
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        was_training = model.training
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        weights = effective_weights(model, masks, binary) if (masks or binary) else None
        xt = torch.from_numpy(np.ascontiguousarray(x))
        for start in range(0, len(xt), self.eval_batch):
            self.counts(model, xt[start:start + self.eval_batch], timesteps, weights)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        reset_state(model)
        model.train(was_training)

    @torch.no_grad()
    def predict(self, model: nn.Module, x: np.ndarray, timesteps: int,
                masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False) -> np.ndarray:
        was_training = model.training
        model.eval()
        weights = effective_weights(model, masks, binary) if (masks or binary) else None
        preds = []
        xt = torch.from_numpy(np.ascontiguousarray(x))
        for start in range(0, len(xt), self.eval_batch):
            preds.append(self.counts(model, xt[start:start + self.eval_batch], timesteps, weights).argmax(dim=1))
        reset_state(model)
        model.train(was_training)
        return torch.cat(preds).numpy()

    def accuracy(self, model: nn.Module, x: np.ndarray, y: np.ndarray, timesteps: int,
                 masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False) -> float:
        return float((self.predict(model, x, timesteps, masks, binary) == y).mean())

    @torch.no_grad()
    def timestep_kl(self, model: nn.Module, x: np.ndarray, timesteps: int,
                    masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False) -> list[float]:
        """``KL(p_T ‖ p_{T'})`` for ``T' = 1 … T − 1`` on the batch ``x`` (batch mean).

        ``p_{T'} = softmax(c_{T'} · T / T')``: the output firing rate over the first T' steps,
        on the scale of the T-step spike counts the loss uses (so T' = T is the trained
        output distribution).
        """
        was_training = model.training
        model.eval()
        weights = effective_weights(model, masks, binary) if (masks or binary) else None
        seen = self.cumulative_counts(model, torch.from_numpy(np.ascontiguousarray(x)), timesteps, weights)
        reset_state(model)
        model.train(was_training)
        log_p = torch.log_softmax(seen[-1].double(), dim=1)
        out = []
        for t in range(1, timesteps):
            log_q = torch.log_softmax(seen[t - 1].double() * (timesteps / t), dim=1)
            kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
            out.append(max(float(kl), 0.0))
        return out


def prune_masks(model: nn.Module, keep: int, masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Global magnitude pruning: keep the ``keep`` largest |w| over every prunable tensor
    (among the entries ``masks`` still keeps)."""
    from .rules import global_magnitude_keep

    weights = prunable(model)
    mags = {n: w.detach().abs().double().numpy() for n, w in weights.items()}
    alive = None if masks is None else {n: masks[n].numpy() if n in masks else np.ones(w.shape, bool)
                                        for n, w in weights.items()}
    kept = global_magnitude_keep(mags, keep, alive)
    return {n: torch.from_numpy(k.copy()) for n, k in kept.items()}


def rewind_state(model: nn.Module, saved: Mapping[str, torch.Tensor]) -> None:
    """Late rewinding: weights, biases and BatchNorm affine parameters go back to ``saved``;
    BatchNorm running statistics stay as they are (Kim et al.)."""
    keep_running = ("running_mean", "running_var", "num_batches_tracked")
    state = {k: v for k, v in saved.items() if not k.endswith(keep_running)}
    model.load_state_dict(state, strict=False)
