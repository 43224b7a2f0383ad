"""Ticket-search benchmark on digits (seeded; not a test).

    .venv/bin/python benchmarks/search.py [--out benchmarks/results] [--rounds 9] [--epochs 6]
                                          [--repeats 3] [--timesteps 8] [--seed 0]

Measures, for the 64-128-10 LIF MLP on scikit-learn's digits (T = 8, direct input):

1. accuracy vs sparsity over the ladder 1 − 0.75^r, r = 1 … R:
   IMP (each round's ticket), ET (each round at the searched T', and each rung's mask
   retrained at the full T exactly as ET's final step does), EB (one search per rung, with
   that rung as its target sparsity);
2. wall-clock search time of ET and EB relative to IMP at the same final sparsity (R rounds),
   median of ``--repeats`` interleaved runs, plus a machine-independent cost: epochs × time
   steps actually trained;
3. binary vs full-precision ticket accuracy at R rounds (binary fine-tune of each method's
   ticket, and IMP with binary weights from scratch).

Writes ``search.json`` and ``search.md`` to ``--out`` and prints the Markdown. Wall-clock
numbers depend on the load of the machine (the load average is recorded in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def epoch_steps(log: dict[str, Any]) -> int:
    """Epochs × time steps trained until the full-precision ticket (binary fine-tune excluded)."""
    return sum(r["epochs"] * r["timesteps"] for r in log["rounds"] if r["stage"] != "binary")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from slt_deploy.search import SearchConfig, digits, ladder, run_search
    from slt_deploy.search.checkpoint import completed_rounds
    from slt_deploy.search.model import build_model
    from slt_deploy.search.trainer import Trainer, apply_masks, rewind_state

    torch.set_num_threads(1)
    data = digits()
    # warm-up: the first optimiser of a process imports torch._dynamo (seconds); keep that out of the timings
    warm = build_model("mlp", (64,), 10, seed=args.seed)
    Trainer().fit(warm, data.x_train[:64], data.y_train[:64], 1, 2)
    R, E, T = args.rounds, args.epochs, args.timesteps
    base = dict(data="digits", arch="mlp", epochs=E, timesteps=T, seed=args.seed, prune_fraction=0.25)
    load_before = os.getloadavg()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="slt-search-bench-"))

    def search(name: str, **kw: Any) -> dict[str, Any]:
        cfg = SearchConfig(**{**base, **kw})
        out = work / f"{name}.slt"
        result = run_search(cfg, out, dataset=data, keep_checkpoints=kw.get("method") == "et")
        t = result.log["ticket"]
        print(f"  {name}: {t['sparsity']:.3f} sparse, acc {t['accuracy_reference']:.4f}, "
              f"search {result.log['seconds']['search']:.1f} s", file=sys.stderr, flush=True)
        return result.log

    # ---- 2 + 3: timing and binary at R rounds (interleaved repeats; repeat 0 also gives the curves)
    timing: dict[str, list[float]] = {"imp": [], "et": [], "eb": []}
    logs: dict[str, dict[str, Any]] = {}
    for rep in range(args.repeats):
        for method in ("imp", "et", "eb"):
            log = search(f"{method}-{rep}", method=method, rounds=R, binary=True)
            timing[method].append(log["seconds"]["search"])
            if rep == 0:
                logs[method] = log
            elif method == "et":  # keep only the first ET run's checkpoints
                import shutil

                shutil.rmtree(work / f"{method}-{rep}.slt.search", ignore_errors=True)
    scratch = search("imp-binary-scratch", method="imp", rounds=R, binary=True, binary_from="scratch")

    # ---- 1: curves
    imp_curve = [(r["sparsity"], r["test_accuracy"]) for r in logs["imp"]["rounds"] if r["stage"] == "prune"]
    et_log = logs["et"]
    t_prime = et_log["search_timesteps"]
    et_search_curve = [(r["sparsity"], r["test_accuracy"]) for r in et_log["rounds"] if r["stage"] == "prune"]
    # each rung's ET mask retrained at the full T from the rewound weights (ET's final step)
    trainer = Trainer(SearchConfig().learning_rate, SearchConfig().batch_size, args.seed)
    rounds = dict(completed_rounds(work / "et-0.slt.search"))
    et_ticket_curve = []
    for r in range(1, R + 1):
        payload = torch.load(rounds[r], weights_only=True)
        model = build_model("mlp", (64,), 10, seed=args.seed)
        model.load_state_dict(payload["model"])
        masks = {k: v.bool() for k, v in payload["masks"].items()}
        rewind_state(model, payload["rewind"])
        apply_masks(model, masks)
        trainer.fit(model, data.x_train, data.y_train, E, T, masks=masks, key=("final",))
        et_ticket_curve.append((1 - sum(int(m.sum()) for m in masks.values()) /
                                sum(m.numel() for m in masks.values()),
                                trainer.accuracy(model, data.x_test, data.y_test, T, masks)))
    final_et = [r for r in et_log["rounds"] if r["stage"] == "final"][0]["test_accuracy"]
    assert abs(et_ticket_curve[-1][1] - final_et) < 1e-12, "rung R retrained must equal ET's own final ticket"
    eb_curve = []
    for r in range(1, R + 1):
        if r == R:
            log = logs["eb"]
            acc = log["ticket"]["full_precision_accuracy"]
        else:
            log = search(f"eb-rung{r}", method="eb", rounds=R, target_sparsity=round(ladder(r), 6))
            acc = log["ticket"]["accuracy_reference"]
        eb_curve.append({"sparsity": log["ticket"]["sparsity"], "accuracy": acc,
                         "stop_epoch": log["eb"]["stop_epoch"], "converged": log["eb"]["converged"]})

    med = {m: statistics.median(v) for m, v in timing.items()}
    cost = {m: epoch_steps(logs[m]) for m in logs}
    result = {
        "benchmark": "search",
        "setup": {"data": "digits (1437 train / 360 test, split seed 0)", "arch": "mlp 64-128-10", "timesteps": T,
                  "epochs": E, "rounds": R, "prune_fraction": 0.25, "seed": args.seed, "repeats": args.repeats,
                  "final_sparsity": logs["imp"]["ticket"]["sparsity"], "torch_threads": 1,
                  "cpu_count": os.cpu_count(), "load_average_before": load_before,
                  "load_average_after": os.getloadavg(), "python": platform.python_version(),
                  "versions": logs["imp"]["versions"]},
        "curve": {
            "imp": [{"sparsity": s, "accuracy": a} for s, a in imp_curve],
            "et_search": [{"sparsity": s, "accuracy": a, "timesteps": t_prime} for s, a in et_search_curve],
            "et_ticket": [{"sparsity": s, "accuracy": a} for s, a in et_ticket_curve],
            "eb": eb_curve,
            "dense_accuracy": logs["imp"]["dense_accuracy"],
        },
        "et": {"search_timesteps": t_prime, "normalised_kl": et_log["et"]["normalised_kl"]},
        "timing": {
            "seconds": timing, "median_seconds": med,
            "ratio_vs_imp": {m: med[m] / med["imp"] for m in med},
            "epoch_steps": cost, "epoch_steps_ratio_vs_imp": {m: cost[m] / cost["imp"] for m in cost},
            "eb_stop_epoch": logs["eb"]["eb"]["stop_epoch"], "eb_converged": logs["eb"]["eb"]["converged"],
        },
        "binary": {
            **{m: {"full_precision": logs[m]["ticket"]["full_precision_accuracy"],
                   "binary_from_ticket": logs[m]["ticket"]["accuracy_reference"]} for m in logs},
            "imp_binary_from_scratch": scratch["ticket"]["accuracy_reference"],
        },
        "wall_seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (args.out / "search.md").write_text(md)
    print(md)
    return result


def markdown(res: dict[str, Any]) -> str:
    s = res["setup"]
    c = res["curve"]
    t = res["timing"]
    lines = [
        "# Ticket search on digits",
        "",
        f"MLP 64-128-10 (snnTorch Leaky), T = {s['timesteps']}, {s['epochs']} epochs per training run, "
        f"25 % pruned per round, {s['rounds']} rounds, seed {s['seed']}; one torch thread; load average "
        f"{s['load_average_before'][0]:.1f} before, {s['load_average_after'][0]:.1f} after on {s['cpu_count']} cores. "
        f"Dense accuracy {c['dense_accuracy']:.4f}. ET searched at T' = {res['et']['search_timesteps']}.",
        "",
        "## Accuracy vs sparsity (test split, 360 digits)",
        "",
        f"| sparsity | IMP (T={s['timesteps']}) | ET search (T'={res['et']['search_timesteps']}) | "
        f"ET ticket (T={s['timesteps']}) | EB ticket (T={s['timesteps']}) | EB stop epoch |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for imp, ets, ett, eb in zip(c["imp"], c["et_search"], c["et_ticket"], c["eb"], strict=True):
        stop = f"{eb['stop_epoch']}" + ("" if eb["converged"] else " (cap)")
        lines.append(f"| {imp['sparsity']:.1%} | {imp['accuracy']:.4f} | {ets['accuracy']:.4f} | "
                     f"{ett['accuracy']:.4f} | {eb['accuracy']:.4f} | {stop} |")
    lines += [
        "",
        f"## Search time at {s['final_sparsity']:.1%} sparsity (median of {s['repeats']}, interleaved)",
        "",
        "| method | median s | vs IMP | epochs × T trained | vs IMP |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in ("imp", "et", "eb"):
        lines.append(f"| {m.upper()} | {t['median_seconds'][m]:.1f} | {t['ratio_vs_imp'][m]:.2f} | "
                     f"{t['epoch_steps'][m]} | {t['epoch_steps_ratio_vs_imp'][m]:.2f} |")
    b = res["binary"]
    lines += [
        "",
        f"## Binary vs full-precision tickets at {s['final_sparsity']:.1%} sparsity",
        "",
        "| method | full precision | binary (fine-tuned from the ticket) |",
        "|---|---:|---:|",
    ]
    for m in ("imp", "et", "eb"):
        lines.append(f"| {m.upper()} | {b[m]['full_precision']:.4f} | {b[m]['binary_from_ticket']:.4f} |")
    lines += ["", f"IMP with binary weights from scratch: {b['imp_binary_from_scratch']:.4f}.", "",
              f"Wall time of the whole benchmark: {res['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
