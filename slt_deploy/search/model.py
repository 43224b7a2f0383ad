"""The networks the search trains: snnTorch ``Leaky`` neurons in an ``nn.Sequential``, so
that :func:`slt_deploy.from_torch` imports them operation for operation.

- ``mlp``: ``[Flatten] → Linear(F, hidden) → Leaky → Linear(hidden, classes) → Leaky``
  (the ``slt demo`` network for F = 64, hidden = 128).
- ``conv``: ``Conv2d(C, c1, 3, pad 1) → BatchNorm2d → Leaky → MaxPool2d(2) → Conv2d(c1, c2,
  3, pad 1) → BatchNorm2d → Leaky → MaxPool2d(2) → Flatten → Linear → Leaky``.
  BatchNorm is folded into the convolution at export; max pooling of spikes is still a
  spike (OR over the window), so every layer after the first receives binary input.

Every ``Leaky`` resets to zero (the ECCV 2022 setup's hard reset; snnTorch's default subtract
reset has no NIR form that snnTorch's own NIR reader runs, and netx's CUBA neuron resets to
zero), with the defaults β = 0.875 = 1 − 512/4096 and θ = 1: NIR states β exactly through
τ (snnTorch's ``1 − dt/τ`` in float32 gives it back bit for bit) and Loihi's 12-bit decay
exactly (``dv = 512``). docs/search.md says how other values fare.

Direct encoding: the analog sample is the input at every step; the loss is the
cross-entropy of the output spike counts over T steps. The surrogate gradient is
snnTorch's fast sigmoid (slope 10); its forward pass is the Heaviside step ``v − θ > 0``.

- ``vgg16`` / ``resnet19``: the ECCV 2022 networks with SpikingJelly-style LIF neurons
  (:mod:`.archs`, :mod:`.neurons`), built at ``width`` times the paper's channel counts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

SURROGATE_SLOPE = 10.0
RESET = "zero"  # snnTorch reset_mechanism of every Leaky (see the module docstring)


def leaky(beta: float, threshold: float, reset: str) -> nn.Module:
    import snntorch as snn
    from snntorch import surrogate

    return snn.Leaky(beta=beta, threshold=threshold, spike_grad=surrogate.fast_sigmoid(slope=SURROGATE_SLOPE),
                     init_hidden=True, reset_mechanism=reset)


def build_model(arch: str, input_shape: tuple[int, ...], classes: int, hidden: int = 128,
                channels: tuple[int, int] = (32, 64), beta: float = 0.875, threshold: float = 1.0,
                seed: int = 0, width: float = 1.0) -> nn.Module:
    """A freshly initialised network (``torch.manual_seed(seed)`` right before building it)."""
    torch.manual_seed(seed)
    layers: list[nn.Module]
    if arch in ("vgg16", "resnet19"):
        from .archs import BUILDERS

        c, h, w = input_shape
        return BUILDERS[arch]((c, h, w), classes, width)
    if arch == "spikformer":
        from .spikformer import Spikformer

        c, h, w = input_shape
        dim = hidden if hidden != 128 else 32  # --hidden sets the embedding (default 32 for spikformer)
        return Spikformer((c, h, w), classes, dim, heads=2, blocks=1, patch=2,
                          neuron=lambda threshold=threshold: leaky(beta, threshold, RESET))
    if arch == "mlp":
        features = 1
        for s in input_shape:
            features *= int(s)
        layers = [nn.Flatten()] if len(input_shape) > 1 else []
        layers += [nn.Linear(features, hidden), leaky(beta, threshold, RESET),
                   nn.Linear(hidden, classes), leaky(beta, threshold, RESET)]
    elif arch == "conv":
        c, h, w = input_shape
        c1, c2 = channels
        layers = [nn.Conv2d(c, c1, 3, padding=1), nn.BatchNorm2d(c1), leaky(beta, threshold, RESET),
                  nn.MaxPool2d(2),
                  nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), leaky(beta, threshold, RESET),
                  nn.MaxPool2d(2), nn.Flatten(),
                  nn.Linear(c2 * (h // 4) * (w // 4), classes), leaky(beta, threshold, RESET)]
    else:  # SearchConfig validates arch; this guards direct callers
        raise ValueError(f"unknown architecture {arch!r}")
    return nn.Sequential(*layers)


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every weight tensor with more than one dimension (Linear and Conv2d weights), by
    parameter name (``"0.weight"``): what global magnitude pruning ranks together."""
    out: dict[str, nn.Parameter] = {}
    for path, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            out[f"{path}.weight" if path else "weight"] = m.weight
    return out


def neurons(model: nn.Module) -> list[Any]:
    """The snnTorch neurons of ``model`` (the ones whose membrane is a buffer)."""
    import snntorch as snn

    return [m for m in model.modules() if isinstance(m, snn.SpikingNeuron)]


def reset_state(model: nn.Module) -> None:
    """Zero and detach the membranes of this model's neurons only (``snntorch.utils.reset``
    resets every neuron instance of the process)."""
    from .neurons import SpikingLIF

    for m in model.modules():
        if isinstance(m, SpikingLIF):
            m.reset()
    for m in neurons(model):
        mem = getattr(m, "mem", None)
        if isinstance(mem, torch.Tensor):
            m.mem = torch.zeros_like(mem)


def clear_state(model: nn.Module) -> None:
    """Membranes emptied (snnTorch re-creates them at the next call): every rank then holds
    buffers of one shape, as DistributedDataParallel's start-up broadcast needs."""
    from .neurons import SpikingLIF

    for m in model.modules():
        if isinstance(m, SpikingLIF):
            m.reset()
    for m in neurons(model):
        mem = getattr(m, "mem", None)
        if isinstance(mem, torch.Tensor):
            m.mem = torch.zeros(0, dtype=mem.dtype, device=mem.device)
