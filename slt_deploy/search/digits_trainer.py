"""The small trainer behind ``slt demo`` (kept API of the former ``slt_deploy.training``).

A thin layer over :mod:`slt_deploy.search`: the network is the search's ``mlp``
(``Linear(64, H) → Leaky → Linear(H, 10) → Leaky``, zero resets), training, pruning to
the ladder and the binary straight-through fine-tune are the search's own. What it adds is
the demo's calling convention: one model object carried through ``fit → imp → binarize``,
with ``torch.nn.utils.prune`` hooks on the returned model (so its ``state_dict`` holds
``weight_orig`` / ``weight_mask`` pairs that ``slt pack --arch`` reads back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import build_model


def digits_model(hidden: int = 128, seed: int = 0) -> Any:
    """The example architecture (untrained): ``slt pack ckpt.pt --arch slt_deploy.training:digits_model``."""
    return build_model("mlp", (64,), 10, hidden=hidden, beta=0.875, threshold=1.0, seed=seed)


class DigitsTrainer:
    """Train / prune (IMP, late rewinding) / binarize the digits example network."""

    def __init__(self, timesteps: int = 8, hidden: int = 128, seed: int = 0, lr: float = 2e-3,
                 batch_size: int = 128, rewind_epoch: int = 2, console: Any = None) -> None:
        from .trainer import Progress, Trainer

        self.timesteps = timesteps
        self.hidden = hidden
        self.seed = seed
        self.rewind_epoch = rewind_epoch
        self.console = console
        self.trainer = Trainer(lr=lr, batch_size=batch_size, seed=seed, progress=Progress(console))
        self.masks: dict[str, Any] = {}  # parameter name ("0.weight") -> bool keep-mask
        self._rewind_state: dict[str, Any] | None = None
        self._fits = 0

    def build(self) -> Any:
        return digits_model(self.hidden, self.seed)

    def weight_layers(self, model: Any) -> dict[str, Any]:
        import torch

        return {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}

    def counts(self, model: Any, x: Any) -> Any:
        """Output spike counts over T steps for a batch of analog images."""
        return self.trainer.counts(model, x, self.timesteps)

    def fit(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int, description: str = "train",
            record_rewind: bool = True) -> None:
        self._fits += 1

        def capture(epoch: int) -> None:
            if record_rewind and self._rewind_state is None and epoch == self.rewind_epoch:
                self._rewind_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        self.trainer.fit(model, x, y, epochs, self.timesteps, masks=self.masks or None, key=("digits", self._fits),
                         description=description, on_epoch=capture)

    def accuracy(self, model: Any, x: np.ndarray, y: np.ndarray) -> float:
        return self.trainer.accuracy(model, x, y, self.timesteps)

    def imp(self, model: Any, x: np.ndarray, y: np.ndarray, rounds: int, prune_fraction: float,
            epochs: int) -> Any:
        """``rounds`` rounds of global magnitude pruning to the ladder ``1 − (1 − f)^r``, late rewinding."""
        import torch.nn.utils.prune as prune

        from .model import prunable
        from .rules import ladder_keep_counts
        from .trainer import apply_masks, prune_masks, rewind_state

        total = sum(w.numel() for w in prunable(model).values())
        keeps = ladder_keep_counts(total, rounds, prune_fraction)
        for r in range(1, rounds + 1):
            self.masks = prune_masks(model, keeps[r], self.masks or None)
            if self._rewind_state is not None:
                rewind_state(model, self._rewind_state)
            apply_masks(model, self.masks)
            self.fit(model, x, y, epochs, description=f"IMP round {r}/{rounds} ({1 - keeps[r] / total:.0%} sparse)",
                     record_rewind=False)
        for name, layer in self.weight_layers(model).items():
            prune.custom_from_mask(layer, "weight", self.masks[f"{name}.weight"].float())
        return model

    def sparsity(self, model: Any) -> float:
        layers = self.weight_layers(model)
        total = sum(m.weight.numel() for m in layers.values())
        zero = sum(int((m.weight == 0).sum()) for m in layers.values())
        return zero / total

    def binarize(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
        """Straight-through binary fine-tune; afterwards kept weights are exactly α·sign."""
        import torch
        import torch.nn.utils.prune as prune

        from .trainer import binary_value

        layers = self.weight_layers(model)
        for layer in layers.values():
            if hasattr(layer, "weight_orig"):
                prune.remove(layer, "weight")
        self._fits += 1
        self.trainer.fit(model, x, y, epochs, self.timesteps, masks=self.masks or None, binary=True,
                         key=("digits", self._fits), description="binary fine-tune")
        with torch.no_grad():
            for name, layer in layers.items():
                mask = self.masks.get(f"{name}.weight", torch.ones_like(layer.weight, dtype=torch.bool))
                layer.weight.copy_(binary_value(layer.weight, mask))
                prune.custom_from_mask(layer, "weight", mask.float())
