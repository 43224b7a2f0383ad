"""Small surrogate-gradient trainer used by the built-in digits example (needs torch + snnTorch).

The network is ``Linear(64, H) -> Leaky -> Linear(H, 10) -> Leaky`` (snnTorch, direct
encoding: the analog image is the input current source at every step). The loss is the
cross-entropy of the output spike counts over T steps.

- IMP with late rewinding: train, remember the weights after ``rewind_epoch`` epochs;
  each round prunes ``prune_fraction`` of the remaining weights by global magnitude over
  both weight matrices, rewinds the kept weights to the remembered ones and retrains
  with the pruned weights held at zero.
- Binary fine-tune: kept weights become ``α[o] · sign(w)`` with ``α[o]`` the mean |w| of
  the kept weights of output o; gradients pass straight through to latent float weights.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np


def digits_model(hidden: int = 128, seed: int = 0) -> Any:
    """The example architecture (untrained): ``slt pack ckpt.pt --arch slt_deploy.training:digits_model``."""
    return DigitsTrainer(hidden=hidden, seed=seed).build()


class DigitsTrainer:
    """Train / prune / binarize the digits example network."""

    def __init__(self, timesteps: int = 8, hidden: int = 128, seed: int = 0, lr: float = 2e-3,
                 batch_size: int = 128, rewind_epoch: int = 2, console: Any = None) -> None:
        import torch

        self.torch = torch
        self.timesteps = timesteps
        self.hidden = hidden
        self.seed = seed
        self.lr = lr
        self.batch_size = batch_size
        self.rewind_epoch = rewind_epoch
        self.console = console
        self.masks: dict[str, Any] = {}
        self._rewind_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ model
    def build(self) -> Any:
        import snntorch as snn
        from snntorch import surrogate

        torch = self.torch
        torch.manual_seed(self.seed)
        grad = surrogate.fast_sigmoid(slope=10)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, self.hidden),
            snn.Leaky(beta=0.875, threshold=1.0, spike_grad=grad, init_hidden=True, reset_mechanism="zero"),
            torch.nn.Linear(self.hidden, 10),
            snn.Leaky(beta=0.875, threshold=1.0, spike_grad=grad, init_hidden=True, reset_mechanism="subtract"),
        )
        return model

    def weight_layers(self, model: Any) -> dict[str, Any]:
        return {name: m for name, m in model.named_modules() if isinstance(m, self.torch.nn.Linear)}

    def counts(self, model: Any, x: Any) -> Any:
        """Output spike counts over T steps for a batch of analog images."""
        from snntorch import utils

        utils.reset(model)
        total = 0
        for _ in range(self.timesteps):
            total = total + model(x)
        return total

    # --------------------------------------------------------------- training
    def fit(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int, description: str = "train",
            record_rewind: bool = True) -> None:
        torch = self.torch
        gen = torch.Generator().manual_seed(self.seed)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        with self._progress(description, epochs) as advance:
            for epoch in range(epochs):
                order = torch.randperm(len(xt), generator=gen)
                for start in range(0, len(xt), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    opt.zero_grad()
                    loss = loss_fn(self.counts(model, xt[idx]), yt[idx])
                    loss.backward()
                    self._mask_gradients(model)
                    opt.step()
                    self._apply_masks(model)
                if record_rewind and self._rewind_state is None and epoch + 1 == self.rewind_epoch:
                    self._rewind_state = copy.deepcopy(model.state_dict())
                advance()

    def accuracy(self, model: Any, x: np.ndarray, y: np.ndarray) -> float:
        with self.torch.no_grad():
            pred = self.counts(model, self.torch.from_numpy(x)).argmax(dim=1).numpy()
        return float((pred == y).mean())

    # ---------------------------------------------------------------- pruning
    def imp(self, model: Any, x: np.ndarray, y: np.ndarray, rounds: int, prune_fraction: float,
            epochs: int) -> Any:
        import torch.nn.utils.prune as prune
        for r in range(rounds):
            self._global_magnitude_prune(model, prune_fraction)
            if self._rewind_state is not None:
                kept = {k: v for k, v in self._rewind_state.items()}
                model.load_state_dict(kept, strict=False)
            self._apply_masks(model)
            self.fit(model, x, y, epochs, description=f"IMP round {r + 1}/{rounds} ({self.sparsity(model):.0%} sparse)",
                     record_rewind=False)
        for name, layer in self.weight_layers(model).items():
            prune.custom_from_mask(layer, "weight", self.masks[name])
        return model

    def sparsity(self, model: Any) -> float:
        layers = self.weight_layers(model)
        total = sum(m.weight.numel() for m in layers.values())
        zero = sum(int((m.weight == 0).sum()) for m in layers.values())
        return zero / total

    def _global_magnitude_prune(self, model: Any, fraction: float) -> None:
        torch = self.torch
        layers = self.weight_layers(model)
        for name, m in layers.items():
            self.masks.setdefault(name, torch.ones_like(m.weight))
        kept = torch.cat([m.weight.detach().abs()[self.masks[n] > 0] for n, m in layers.items()])
        k = int(fraction * kept.numel())
        if k == 0:
            return
        cut = kept.kthvalue(k).values
        for name, m in layers.items():
            self.masks[name] = self.masks[name] * (m.weight.detach().abs() > cut).float()

    def _mask_gradients(self, model: Any) -> None:
        for name, m in self.weight_layers(model).items():
            grad = self._weight(m).grad
            if name in self.masks and grad is not None:
                grad.mul_(self.masks[name])

    def _apply_masks(self, model: Any) -> None:
        with self.torch.no_grad():
            for name, m in self.weight_layers(model).items():
                if name in self.masks:
                    self._weight(m).mul_(self.masks[name])

    @staticmethod
    def _weight(layer: Any) -> Any:
        """The trainable weight tensor: latent weights under a parametrization or prune hook."""
        if hasattr(layer, "parametrizations"):
            return layer.parametrizations.weight.original
        return getattr(layer, "weight_orig", layer.weight)

    # --------------------------------------------------------------- binarize
    def binarize(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
        """Straight-through binary fine-tune; afterwards kept weights are exactly α·sign."""
        torch = self.torch
        import torch.nn.utils.prune as prune
        from torch.nn.utils import parametrize

        layers = self.weight_layers(model)
        for name, layer in layers.items():
            mask = self.masks.get(name, torch.ones_like(layer.weight))
            if hasattr(layer, "weight_orig"):
                prune.remove(layer, "weight")
            parametrize.register_parametrization(layer, "weight", _BinarySTE(mask))
        self.fit(model, x, y, epochs, description="binary fine-tune", record_rewind=False)
        with torch.no_grad():
            for name, layer in layers.items():
                latent = layer.parametrizations.weight.original.detach().clone()
                binary = _BinarySTE.binary_value(latent, layer.parametrizations.weight[0].mask)
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
                layer.weight.copy_(binary)
                prune.custom_from_mask(layer, "weight", self.masks.get(name, torch.ones_like(binary)))

    # --------------------------------------------------------------- progress
    def _progress(self, description: str, total: int) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def bar():  # type: ignore[no-untyped-def]
            if self.console is None:
                yield lambda: None
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("   {task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=self.console, transient=True) as progress:
                task = progress.add_task(description, total=total)
                yield lambda: progress.advance(task)

        return bar()


def _make_binary_ste() -> Any:
    import torch

    class BinarySTE(torch.nn.Module):
        """Parametrization ``w -> α·sign(w)·mask`` with a straight-through gradient."""

        def __init__(self, mask: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer("mask", mask.detach().clone())

        @staticmethod
        def binary_value(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            kept = w * mask
            alpha = kept.abs().sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1)
            sign = torch.where(w < 0, -1.0, 1.0) * mask
            return alpha * sign

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            kept = w * self.mask
            return kept + (self.binary_value(w, self.mask) - kept).detach()

    return BinarySTE


class _LazySTE:
    """Builds the torch Module class on first use so that importing this file needs no torch."""

    _cls: Any = None

    def __call__(self, mask: Any) -> Any:
        if _LazySTE._cls is None:
            _LazySTE._cls = _make_binary_ste()
        return _LazySTE._cls(mask)

    def binary_value(self, w: Any, mask: Any) -> Any:
        if _LazySTE._cls is None:
            _LazySTE._cls = _make_binary_ste()
        return _LazySTE._cls.binary_value(w, mask)


_BinarySTE = _LazySTE()
