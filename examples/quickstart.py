"""Quick start: a pruned snnTorch network -> .slt -> inspect -> run, checked against snnTorch.

Run:  .venv/bin/python examples/quickstart.py  [out_dir]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
import torch.nn.utils.prune as prune

import slt_deploy as slt
from slt_deploy.format import layer_report


def build_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(256, 10), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="subtract"),
    )
    for layer in (model[0], model[2]):
        prune.l1_unstructured(layer, "weight", amount=0.9)  # a 90%-sparse "ticket"
    return model


def main(out_dir: Path) -> None:
    model = build_model()
    x = np.random.default_rng(0).integers(0, 17, size=(32, 64)).astype(np.float32) / 16

    ticket = slt.from_torch(model, torch.from_numpy(x[:1]), timesteps=8, binarize=True)
    path = out_dir / "quickstart.slt"
    slt.save(ticket, path)
    for row in layer_report(path):
        print(f"{row['name']:>4} {row['encoding']:>11} density {row['density']:.3f} "
              f"{row['bits_per_synapse']:.3f} bits/synapse (bound {row['entropy_bound_bits_per_synapse']:.3f})")

    result = slt.run(slt.load(path), x)
    print("output spikes", result.spikes.shape)
    for name, per_step in result.spike_counts.items():
        print(f"{name:>4} spikes per step over the batch: {per_step.tolist()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
