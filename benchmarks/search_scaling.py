"""Data-parallel ticket search: 1 process vs 2 processes (torchrun, gloo) on this machine.

    .venv/bin/python benchmarks/search_scaling.py [--out benchmarks/results] [--repeats 3] [--quick]

Workloads, each a real ``slt search`` command (IMP, one pruning round, so two training
runs of ``--epochs`` epochs each):

- ``digits MLP``: scikit-learn's digits (1437 train), the 64-128-10 LIF MLP, T = 8, global
  batch 64 (so 32 per process with two);
- ``digits MLP, 64 per process``: the same with 64 samples per process (global batch 128
  with two processes): the MLP's step costs about as much at 32 samples as at 64 (per-step
  framework overhead of T x 4 small layers dominates), so this is how it scales;
- ``VGG16``: the ECCV 2022 VGG16 (SpikingJelly-style LIF) at a quarter of its channel
  widths, on 3x32x32 images (digits upsampled, 512 train), T = 4, global batch 64.

Each runs as one process (``python -m slt_deploy search``, one torch thread) and as two
processes (``torchrun --standalone --nproc-per-node 2 -m slt_deploy search``, one thread
each, the same global batch). The runs are interleaved (every repeat runs every
configuration once) and the table reports medians. Throughput is read from each search's
own log: training samples (all ranks) over the training-loop seconds (evaluation,
checkpoints and export excluded). Scaling efficiency = samples/s of 2 processes /
(2 x samples/s of 1 process). The log's own in-run efficiency (each round: the ranks'
speed without gradient exchange, measured at the start of the round, over their speed
with it) is listed beside it.

Writes ``search_scaling.json`` and ``search_scaling.md`` to ``--out`` and prints the
Markdown. Timings depend on the machine's load (recorded): measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "1 process": {"procs": 1, "threads": 1},
    "2 processes": {"procs": 2, "threads": 1},
}


def vgg_data(path: Path, train: int, test: int) -> Path:
    """Digits upsampled to 3x32x32 (pixels k/16 in three colour mixes), saved as an uncompressed .npz."""
    import numpy as np

    from slt_deploy.search import digits

    d = digits()

    def up(x: Any) -> Any:
        img = np.asarray(x).reshape(-1, 1, 8, 8).repeat(4, axis=2).repeat(4, axis=3)
        return np.concatenate([img, img * np.float32(0.5), 1 - img], axis=1).astype(np.float32)

    np.savez(path, x_train=up(d.x_train[:train]), y_train=d.y_train[:train], x_test=up(d.x_test[:test]),
             y_test=d.y_test[:test])
    return path


def run(work: Path, name: str, procs: int, threads: int, args: list[str]) -> dict[str, Any]:
    out = work / f"{name}.slt"
    for stale in (out, out.with_suffix(".json")):
        stale.unlink(missing_ok=True)
    if procs == 1:
        cmd = [sys.executable, "-m", "slt_deploy"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
               "-m", "slt_deploy"]
    cmd += ["search", *args, "--threads", str(threads), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    log = json.loads(out.with_suffix(".json").read_text())
    rounds = [r["throughput"] for r in log["rounds"] if r["throughput"]["samples_per_s"] is not None]
    samples = sum(sum(t["samples"]) for t in rounds)
    seconds = sum(max(t["train_seconds"]) for t in rounds)
    effs = [t["scaling_efficiency"] for t in rounds if t["scaling_efficiency"] is not None]
    return {"samples_per_s": samples / seconds, "train_seconds": seconds, "wall_seconds": wall,
            "in_run_efficiency": statistics.median(effs) if effs else None,
            "accuracy": log["ticket"]["accuracy_torch"], "world_size": log["distributed"]["world_size"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test, not a measurement)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="slt-scaling-"))
    vgg_train = 128 if args.quick else 512
    mlp = ["--method", "imp", "--data", "digits", "--arch", "mlp", "--rounds", "1", "--epochs",
           "1" if args.quick else "3", "-T", "8"]
    workloads: dict[str, Any] = {  # name -> arguments, or a function of the number of processes
        "digits MLP": [*mlp, "--batch-size", "64"],
        "digits MLP, 64 per process": lambda procs: [*mlp, "--batch-size", str(64 * procs)],
        "VGG16 (width 1/4)": ["--method", "imp", "--data", str(vgg_data(work / "vgg.npz", vgg_train, 32)), "--arch",
                              "vgg16", "--width", "0.25", "--rounds", "1", "--epochs", "1", "-T", "4",
                              "--batch-size", "64", "--check-samples", "1"],
    }
    load_before = os.getloadavg()
    started = time.perf_counter()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {w: {c: [] for c in CONFIGS} for w in workloads}
    for rep in range(args.repeats):
        for workload, wargs in workloads.items():
            order = list(CONFIGS)
            order = order[rep % len(order):] + order[:rep % len(order)]  # rotate who goes first
            for config in order:
                spec = CONFIGS[config]
                argv = wargs(spec["procs"]) if callable(wargs) else wargs
                r = run(work, f"run-{spec['procs']}p{spec['threads']}t", spec["procs"], spec["threads"], argv)
                runs[workload][config].append(r)
                print(f"  [{rep + 1}/{args.repeats}] {workload:18s} {config:22s} {r['samples_per_s']:9.1f} samples/s "
                      f"(wall {r['wall_seconds']:.1f} s)", file=sys.stderr, flush=True)

    table = []
    for workload in workloads:
        med = {c: statistics.median(r["samples_per_s"] for r in runs[workload][c]) for c in CONFIGS}
        in_run = [r["in_run_efficiency"] for r in runs[workload]["2 processes"] if r["in_run_efficiency"] is not None]
        table.append({
            "workload": workload,
            "samples_per_s": med,
            "speedup_2p_vs_1p": med["2 processes"] / med["1 process"],
            "scaling_efficiency": med["2 processes"] / (2 * med["1 process"]),
            "in_run_efficiency_median": statistics.median(in_run) if in_run else None,
            "wall_seconds_median": {c: statistics.median(r["wall_seconds"] for r in runs[workload][c])
                                    for c in CONFIGS},
            "accuracy": {c: [r["accuracy"] for r in runs[workload][c]] for c in CONFIGS},
        })
    import torch

    result = {
        "benchmark": "search_scaling",
        "command": "python benchmarks/search_scaling.py" + (" --quick" if args.quick else "")
                   + f" --repeats {args.repeats}",
        "workloads": {w: " ".join(a(2) if callable(a) else a) for w, a in workloads.items()},
        "setup": {"repeats": args.repeats, "cpu_count": os.cpu_count(), "load_average_before": load_before,
                  "load_average_after": os.getloadavg(), "python": platform.python_version(),
                  "torch": torch.__version__, "backend": "gloo",
                  "wall_seconds": round(time.perf_counter() - started, 1)},
        "results": table,
        "runs": runs,
    }
    md = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "search_scaling.md").write_text(md)
    print(md)
    return result


def markdown(result: dict[str, Any]) -> str:
    s = result["setup"]
    lines = [
        "# Ticket search: 1 process vs 2 processes (torchrun, gloo, CPU)",
        "",
        f"`{result['command']}`; {s['cpu_count']} CPUs, load average {s['load_average_before'][0]:.1f} before and "
        f"{s['load_average_after'][0]:.1f} after; torch {s['torch']}; median of {s['repeats']} interleaved runs. "
        "Samples/s: training samples of all processes over the training-loop seconds (from each search's log).",
        "",
        "| workload | 1 process (samples/s) | 2 processes (samples/s) | speedup | scaling efficiency | "
        "in-run efficiency (log) | wall s, 1p / 2p |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["results"]:
        sps = row["samples_per_s"]
        in_run = row["in_run_efficiency_median"]
        wall = row["wall_seconds_median"]
        lines.append(f"| {row['workload']} | {sps['1 process']:,.0f} | {sps['2 processes']:,.0f} | "
                     f"{row['speedup_2p_vs_1p']:.2f}x | {row['scaling_efficiency']:.2f} | "
                     + ("-" if in_run is None else f"{in_run:.2f}")
                     + f" | {wall['1 process']:.1f} / {wall['2 processes']:.1f} |")
    lines += ["", "Workloads:", ""]
    lines += [f"- {w}: `slt search {a}`" for w, a in result["workloads"].items()]
    lines += ["", "(The second workload's command is shown for two processes; one process runs it with "
              "`--batch-size 64`.)"]
    lines += ["", f"Wall time of the benchmark: {s['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
