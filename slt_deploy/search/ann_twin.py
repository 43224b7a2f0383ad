"""The ANN twin of a searched ticket: the same architecture with ReLU in place of every spiking
layer, trained on the same data, saved next to the ticket for ``slt energy --ann``.

- ``mlp``: ``[Flatten] → Linear → ReLU → Linear`` (logits);
- ``conv``: ``Conv2d → BatchNorm2d → ReLU → MaxPool2d → Conv2d → BatchNorm2d → ReLU →
  MaxPool2d → Flatten → Linear`` (logits); BatchNorm is folded into the convolution when
  saved, ``w' = w·γ/√(σ² + ε)``, ``b' = (b − μ)·γ/√(σ² + ε) + β``, as the ticket's export does.

Module indices are those of the spiking network (:func:`slt_deploy.search.model.build_model`),
so the saved tensors carry the ticket's layer names (``0.weight``, ``0.bias`` …). Training:
Adam at the search's learning rate, ``epochs`` epochs, mini-batches of ``batch_size``,
cross-entropy of the logits, shuffled by a generator seeded from ``seed`` (same data split
as the search). The file is safetensors (no pickle) with metadata: schema ``slt-ann/1``,
architecture, test accuracy, epochs, seed and data digest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write_bytes
from ..energy.ann import SCHEMA, twin_path
from ..ir.graph import Ticket
from .config import SearchConfig, SltSearchError
from .data import Dataset, load_dataset


def build_relu_model(arch: str, input_shape: tuple[int, ...], classes: int, hidden: int = 128,
                     channels: tuple[int, int] = (32, 64), seed: int = 0) -> nn.Sequential:
    """The ReLU twin of :func:`slt_deploy.search.model.build_model` (same module indices)."""
    torch.manual_seed(seed)
    layers: list[nn.Module]
    if arch == "mlp":
        features = int(np.prod(input_shape))
        layers = [nn.Flatten()] if len(input_shape) > 1 else []
        layers += [nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    elif arch == "conv":
        c, h, w = input_shape
        c1, c2 = channels
        layers = [nn.Conv2d(c, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                  nn.Linear(c2 * (h // 4) * (w // 4), classes)]
    else:
        raise SltSearchError(f"unknown architecture {arch!r}")
    return nn.Sequential(*layers)


def folded_state(model: nn.Sequential) -> dict[str, np.ndarray]:
    """Linear/Conv2d weights and biases by module index, BatchNorm folded into the conv before it."""
    out: dict[str, np.ndarray] = {}
    mods = list(model)
    for i, m in enumerate(mods):
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        w = m.weight.detach().double()
        b = m.bias.detach().double() if m.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(nxt, nn.BatchNorm2d):
            scale = nxt.weight.detach().double() / torch.sqrt(nxt.running_var.double() + nxt.eps)
            w = w * scale.reshape(-1, 1, 1, 1)
            b = (b - nxt.running_mean.double()) * scale + nxt.bias.detach().double()
        out[f"{i}.weight"] = w.float().numpy()
        out[f"{i}.bias"] = b.float().numpy()
    return out


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float((pred == y).mean())


def train_ann_twin(config: SearchConfig, ticket: Ticket, ticket_path: str | Path, *, dataset: Dataset | None = None,
                   console: Any = None) -> dict[str, Any]:
    """Train the ReLU twin of ``config``'s architecture and write it next to ``ticket_path``
    (``t.slt`` → ``t.ann.safetensors``); returns what was done (path, accuracy, seconds)."""
    from safetensors.numpy import save

    started = time.perf_counter()
    data = dataset if dataset is not None else load_dataset(config.data, config.split_seed)
    x_train, x_test = data.for_arch(config.arch)
    x_train, x_test = np.ascontiguousarray(x_train, np.float32), np.ascontiguousarray(x_test, np.float32)
    model = build_relu_model(config.arch, tuple(x_train.shape[1:]), data.classes, config.hidden,
                             tuple(config.channels), config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for a in range(0, len(xt), config.batch_size):
            idx = order[a:a + config.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    accuracy = _accuracy(model, x_test, data.y_test)
    tensors = folded_state(model)
    names = [n.name for n in ticket.synapse_layers()]
    keys = [k[: -len(".weight")] for k in tensors if k.endswith(".weight")]
    if keys != names:
        raise SltSearchError(f"the ANN twin's layers {keys} do not carry the ticket's layer names {names}")
    for name in names:
        if tensors[f"{name}.weight"].shape != ticket.node(name).weights.mask.shape:
            raise SltSearchError(f"the ANN twin's layer {name} has shape {tensors[name + '.weight'].shape}, the "
                                 f"ticket's {ticket.node(name).weights.mask.shape}")
    seconds = time.perf_counter() - started
    path = twin_path(ticket_path)
    meta = {"schema": SCHEMA, "arch": config.arch, "accuracy": f"{accuracy:.6f}", "epochs": str(config.epochs),
            "seed": str(config.seed), "lr": str(config.learning_rate), "batch_size": str(config.batch_size),
            "data": data.name, "data_sha256": data.sha256 or "", "split_seed": str(config.split_seed),
            "ticket": Path(ticket_path).name, "torch": torch.__version__,
            "config": json.dumps({"hidden": config.hidden, "channels": list(config.channels)})}
    atomic_write_bytes(path, save(tensors, metadata=meta))
    if console is not None:
        console.print(f"   ANN twin (ReLU, {config.arch}): test accuracy {accuracy:.4f}, {seconds:.1f} s; wrote "
                      f"[bold]{path}[/] (slt energy {ticket_path} --input X --ann {path})")
    return {"path": str(path), "accuracy": accuracy, "seconds": round(seconds, 3), "epochs": config.epochs}
