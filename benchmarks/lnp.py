"""LNP against its baselines on the same heterogeneous recurrent SNNs, side by side in one process.

    python benchmarks/lnp.py                          # 200 neurons, seeds 0 1 2, 12 TPE trials
    python benchmarks/lnp.py --quick                  # CI smoke: 60 neurons, seeds 0 1 2, 3 trials
    python benchmarks/lnp.py --json out.json --markdown out.md

For each seed one HRSNN (slt_deploy.lnp.hrsnn.build: ``--neurons`` neurons, 8 inputs, gamma
time constants) is built and these networks are derived from it; each is scored on the same
three tasks with LI readouts trained by ridge regression (slt_deploy.lnp.readout.score):

- ``dense``: the unpruned HRSNN;
- ``lnp``: the four LNP steps (slt_deploy.lnp.prune.lnp);
- ``lnp, steps 1-3``: without the time-constant search (step 4), to show what it does;
- ``random``: the same neuron and synapse counts as ``lnp``, chosen uniformly;
- ``activity``: the dense network's least active neurons (spikes on the digits training set,
  after training) removed down to ``lnp``'s neuron count;
- ``imp``: iterative magnitude pruning of the recurrent synapses in 3 rounds (readout retrained
  each round) down to ``lnp``'s synapse count;
- ``dense CHRSNN`` / ``lnp CHRSNN``: the clustered small-world variant (4 clusters), unpruned and
  pruned by LNP (sparsity against the dense CHRSNN).

Reported per network (medians over the seeds): synapse and neuron sparsity against the dense
network, largest Lyapunov exponent (noise-driven, per step), digits accuracy, NRMSE on
Lorenz-63 and Mackey-Glass, .slt bytes of the digits ticket, energy per digits inference
(slt_deploy.energy, NeuroBench convention, 45 nm fp32).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slt_deploy.lnp import hrsnn, prune, readout, tasks  # noqa: E402

NAMES = ("dense", "lnp", "lnp, steps 1-3", "random", "activity", "imp", "dense CHRSNN", "lnp CHRSNN")
METRICS = ("synapse_sparsity", "neuron_sparsity", "lambda_max", "digits_accuracy", "nrmse_lorenz63",
           "nrmse_mackey_glass", "slt_bytes", "energy_pj")


def imp(net: hrsnn.HRSNN, synapses: int, rounds: int, series: list[tasks.Series]) -> hrsnn.HRSNN:
    """Magnitude pruning in ``rounds`` equal geometric steps to ``synapses`` (readout retrained each round)."""
    start = net.synapses
    for r in range(1, rounds + 1):
        net = prune.magnitude_prune(net, int(round(start * (synapses / start) ** (r / rounds))))
        readout.classify_digits(net)  # the readout is retrained; the recurrent weights do not change
    return net


def networks(seed: int, neurons: int, trials: int, series: list[tasks.Series]) -> dict[str, hrsnn.HRSNN]:
    dense = hrsnn.build(neurons, 8, seed)
    lnp, _ = prune.lnp(dense, seed, trials=trials)
    lnp3, _ = prune.lnp(dense, seed, steps=(1, 2, 3))
    _, _, rates = readout.classify_digits(dense)
    clustered = hrsnn.build(neurons, 8, seed, clusters=4)
    return {"dense": dense, "lnp": lnp, "lnp, steps 1-3": lnp3,
            "random": prune.random_prune(dense, seed, lnp.n, lnp.synapses),
            "activity": prune.activity_prune(dense, rates, lnp.n),
            "imp": imp(dense, lnp.synapses, 3, series),
            "dense CHRSNN": clustered, "lnp CHRSNN": prune.lnp(clustered, seed, trials=trials)[0]}


def row(net: hrsnn.HRSNN, dense: hrsnn.HRSNN, seed: int, series: list[tasks.Series]) -> dict[str, float]:
    s = readout.score(net, series)
    return {"synapse_sparsity": 1 - net.synapses / dense.synapses, "neuron_sparsity": 1 - net.n / dense.n,
            "lambda_max": float(hrsnn.lyapunov(net, seed)[0]), "digits_accuracy": s.accuracy,
            "nrmse_lorenz63": s.nrmse["lorenz63"], "nrmse_mackey_glass": s.nrmse["mackey_glass"],
            "slt_bytes": s.slt_bytes, "energy_pj": s.energy_pj, "neurons": net.n, "synapses": net.synapses}


def run(seeds: list[int], neurons: int, trials: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    series = [tasks.lorenz(), tasks.mackey_glass()]
    per_seed: dict[str, list[dict[str, float]]] = {n: [] for n in NAMES}
    for seed in seeds:
        nets = networks(seed, neurons, trials, series)
        for name in NAMES:
            base = nets["dense CHRSNN" if "CHRSNN" in name else "dense"]
            per_seed[name].append(row(nets[name], base, seed, series))
    medians = {n: {m: float(np.median([r[m] for r in rows])) for m in METRICS} for n, rows in per_seed.items()}
    return {"schema": "slt-lnp-bench/1", "seeds": seeds, "neurons": neurons, "trials": trials,
            "medians": medians, "per_seed": per_seed, "seconds": round(time.perf_counter() - t0, 1),
            "machine": {"python": platform.python_version(), "processor": platform.machine()}}


def markdown(report: dict[str, Any]) -> str:
    head = ("| network | synapse sparsity | neuron sparsity | λ_max (/step) | digits acc. | NRMSE Lorenz-63 | "
            "NRMSE Mackey-Glass | .slt bytes | energy / inference |")
    lines = [f"Medians over seeds {report['seeds']} ({report['neurons']} neurons, {report['trials']} TPE trials; "
             f"{report['seconds']} s):", "", head, "|" + "---|" * 9]
    for name, m in report["medians"].items():
        lines.append(f"| {name} | {m['synapse_sparsity']:.1%} | {m['neuron_sparsity']:.1%} | {m['lambda_max']:+.4f} "
                     f"| {m['digits_accuracy']:.1%} | {m['nrmse_lorenz63']:.3f} | {m['nrmse_mackey_glass']:.3f} "
                     f"| {m['slt_bytes']:,.0f} | {m['energy_pj'] / 1e3:.1f} nJ |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--neurons", type=int, default=200)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--quick", action="store_true", help="60 neurons, 3 trials (CI smoke)")
    ap.add_argument("--json", type=Path, help="write the report as JSON")
    ap.add_argument("--markdown", type=Path, help="write the report as Markdown")
    args = ap.parse_args(argv)
    neurons, trials = (60, 3) if args.quick else (args.neurons, args.trials)
    report = run(args.seeds, neurons, trials)
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
