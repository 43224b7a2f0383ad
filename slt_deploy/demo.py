"""The built-in example: a spiking lottery ticket for scikit-learn's digits, end to end.

Steps (all offline, about a minute on two cores):

1. train a 64-128-10 snnTorch LIF network on digits (8x8 images scaled to [0, 1] in
   steps of 1/16, direct encoding, T steps, surrogate gradients);
2. find a sparse ticket by iterative magnitude pruning with late rewinding (global
   magnitude pruning of ``prune_fraction`` of the remaining weights per round);
3. make the kept weights binary (sign x per-channel alpha) with a short straight-through
   fine-tune, so the network the .slt stores is the network that was trained;
4. import it with :func:`slt_deploy.from_torch`, pack it, inspect it, and run it on the
   held-out digits with the reference simulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SltError


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as float32 in [0, 1] (multiples of 1/16), split 80/20 with a fixed seed."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SltError("the demo needs scikit-learn: pip install 'slt-deploy[torch]'") from None
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def run_demo(out: Path, epochs: int = 12, seed: int = 0, timesteps: int = 8, rounds: int = 3,
             prune_fraction: float = 0.5, console: Any = None) -> dict[str, Any]:
    """Run the whole example and return a summary (also written to ``out/summary.json``)."""
    try:
        import torch
    except ImportError:
        raise SltError("the demo trains a network and needs PyTorch: pip install 'slt-deploy[torch]'") from None
    from . import api
    from .format import layer_report
    from .training import DigitsTrainer

    out.mkdir(parents=True, exist_ok=True)
    say = console.print if console is not None else (lambda *a, **k: None)
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    trainer = DigitsTrainer(timesteps=timesteps, seed=seed, console=console)

    say(f"[bold]1. training[/] a 64-128-10 LIF network on digits ({len(x_train)} train / {len(x_test)} test, T={timesteps})")
    model = trainer.build()
    trainer.fit(model, x_train, y_train, epochs=epochs, description="dense")
    dense_acc = trainer.accuracy(model, x_test, y_test)
    say(f"   dense accuracy {dense_acc:.3f}")

    say(f"[bold]2. iterative magnitude pruning[/]: {rounds} rounds of {prune_fraction:.0%}, late rewinding")
    model = trainer.imp(model, x_train, y_train, rounds=rounds, prune_fraction=prune_fraction, epochs=epochs)
    sparse_acc = trainer.accuracy(model, x_test, y_test)
    sparsity = trainer.sparsity(model)
    say(f"   ticket sparsity {sparsity:.1%}, accuracy {sparse_acc:.3f}")

    say("[bold]3. binary weights[/]: sign x per-channel alpha, straight-through fine-tune")
    trainer.binarize(model, x_train, y_train, epochs=epochs)
    binary_acc_torch = trainer.accuracy(model, x_test, y_test)
    say(f"   binary ticket accuracy (snnTorch) {binary_acc_torch:.3f}")

    say("[bold]4. import, pack, inspect, run[/]")
    with torch.no_grad():
        ticket = api.from_torch(model, torch.from_numpy(x_test[:1]), timesteps=timesteps, binarize=True)
    torch.save(model.state_dict(), out / "digits_ckpt.pt")  # prune keys: weight_orig + weight_mask
    slt_path = out / "digits.slt"
    api.save(ticket, slt_path)
    loaded = api.load(slt_path)
    layers = layer_report(loaded)
    np.save(out / "digits_test_x.npy", x_test)
    result = api.run(loaded, x_test, target="reference")
    ticket_acc = float((result.predictions() == y_test).mean())
    from .atomic import atomic_write_bytes
    from .energy import energy

    report = energy(loaded, x_test, profile="cmos45-fp32", convention="neurobench")
    report.ticket_info["name"] = slt_path.name
    atomic_write_bytes(out / "energy.html", report.to_html().encode("utf-8"))
    atomic_write_bytes(out / "energy.json", report.to_json().encode("utf-8"))
    savings = {s.baseline: s.ratio for s in report.savings()}
    dense_fp32_bytes = sum(int(np.prod(r["shape"])) * 4 for r in layers)
    weight_bytes = sum(r["bytes"] for r in layers)
    summary = {
        "dense_accuracy": dense_acc,
        "ticket_sparsity": sparsity,
        "sparse_accuracy": sparse_acc,
        "binary_accuracy_snntorch": binary_acc_torch,
        "binary_accuracy_slt_reference": ticket_acc,
        "slt_file": str(slt_path),
        "slt_file_bytes": slt_path.stat().st_size,
        "weight_bytes": weight_bytes,
        "dense_fp32_weight_bytes": dense_fp32_bytes,
        "layers": layers,
        "spikes_per_step": {k: v.tolist() for k, v in result.spike_counts.items()},
        "energy": {"profile": "cmos45-fp32", "convention": "neurobench",
                   "effective_ac_per_inference": report.effective_ac,
                   "effective_mac_per_inference": report.effective_mac,
                   "ticket_pj_per_inference": report.total(), "savings": savings,
                   "report_html": str(out / "energy.html"), "report_json": str(out / "energy.json")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if console is not None:
        from rich.table import Table

        table = Table("layer", "shape", "density", "encoding", "bytes", "bits/syn", "x bound")
        for r in layers:
            table.add_row(r["name"], "x".join(map(str, r["shape"])), f"{r['density']:.3f}", r["encoding"],
                          f"{r['bytes']:,}", f"{r['bits_per_synapse']:.3f}", f"{r['ratio_vs_entropy_bound']:.2f}")
        console.print(table)
        say(f"   {slt_path}: {summary['slt_file_bytes']:,} bytes on disk; weights {weight_bytes:,} bytes "
            f"vs {dense_fp32_bytes:,} dense fp32 ({dense_fp32_bytes / max(weight_bytes, 1):.0f}x smaller)")
        say(f"   accuracy of the packed ticket on the reference simulator: [bold]{ticket_acc:.3f}[/] "
            f"(snnTorch binary model: {binary_acc_torch:.3f})")
        say(f"[bold]5. energy[/] (cmos45-fp32, neurobench): {report.effective_ac:,.0f} ACs + "
            f"{report.effective_mac:,.0f} MACs per inference, {report.total() / 1000:.1f} nJ; "
            + ", ".join(f"{v:.2f}x less than {k}" for k, v in savings.items()
                        if k in ("ann", "dense-snn") and v is not None))
        say(f"   files in {out}/: digits.slt, digits_ckpt.pt, digits_test_x.npy, energy.html, energy.json, "
            "summary.json; try:")
        say(f"   slt inspect {slt_path}")
        say(f"   slt run {slt_path} --input {out / 'digits_test_x.npy'} -o {out / 'y.npz'}")
        say(f"   slt pack {out / 'digits_ckpt.pt'} --arch slt_deploy.training:digits_model --binarize "
            f"--input-shape 64 -o {out / 'again.slt'}")
    return summary
