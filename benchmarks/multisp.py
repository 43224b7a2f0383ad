"""MultiSp on a small Spikformer (8x8 digits, 2x2 patches -> 16 tokens, embedding 32, 1 block, T = 4):
dense vs tickets at each sparsity level (seeded; not a test).

    .venv/bin/python benchmarks/multisp.py [--out benchmarks/results] [--epochs 20] [--seed 0]

Rows (one ``slt search --arch spikformer`` each, run side by side in worker processes, 1 thread each):

- ``dense``: IMP, one round at prune fraction 0.001 (0.1% of the weights pruned: the dense net);
- ``IMP 75%``: two IMP rounds at 0.5, full-precision weights, all 16 tokens;
- ``IMP 75% binary``: the same, then binary weights (``--binary``: α·sign per channel, ConvPEP included),
  keeping the fine-tune epoch with the best training-set accuracy (``--binary-keep best-train``);
- ``MultiSp``: IMP 75% + binary weights (all layers) + ``--token-keep 0.5`` (the 8 most intense patches),
  ``--binary-keep best-train``; the ConvPEP activations are spikes already (its LIF), so every layer after
  ConvPEP sees binary input;
- ``MultiSp, binary ConvPEP``: the same with only the ConvPEP binary (``--binary-scope convpep``: MultiSp's
  "sparse and binarized ConvPEP weights"), the blocks and head keep sparse float32 weights.

Per row: test accuracy on the reference simulator (360 digits), ``.slt`` bytes, tokens kept, weight
density, effective ACs / MACs per inference and energy (pJ, 45 nm fp32) from the full energy report
(:func:`slt_deploy.energy.energy`, the ``slt energy`` numbers: neurobench, spikformer and memory-aware) on
the 360 test digits. Writes ``multisp.json`` and
``multisp.md`` to ``--out`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROWS = {
    "dense": dict(rounds=1, prune_fraction=0.001),
    "IMP 75%": dict(rounds=2, prune_fraction=0.5),
    "IMP 75% binary": dict(rounds=2, prune_fraction=0.5, binary=True, binary_keep="best-train"),
    "MultiSp": dict(rounds=2, prune_fraction=0.5, binary=True, token_keep=0.5, binary_keep="best-train"),
    "MultiSp, binary ConvPEP": dict(rounds=2, prune_fraction=0.5, binary=True, token_keep=0.5,
                                    binary_keep="best-train", binary_scope="convpep"),
}


def _row(args: tuple[str, dict, int, int, str]) -> dict:
    name, opts, epochs, seed, folder = args
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import slt_deploy as slt
    from slt_deploy.energy import energy
    from slt_deploy.search import SearchConfig, digits, run_search

    out = Path(folder) / (name.replace(" ", "_").replace("%", "") + ".slt")
    cfg = SearchConfig(method="imp", arch="spikformer", hidden=32, epochs=epochs, timesteps=4, lr=2e-3, seed=seed,
                       **opts)
    result = run_search(cfg, out, threads=1)
    ticket = slt.load(out)
    d = digits()
    x = np.asarray(d.x_test).reshape(-1, 1, 8, 8)
    e = energy(ticket, x, convention="spikformer")
    nb = energy(ticket, x)
    kept = sum(int(np.count_nonzero(n.weights.mask)) for n in ticket.synapse_layers())
    total = sum(int(n.weights.mask.size) for n in ticket.synapse_layers())
    select = [n for n in ticket.nodes if n.kind == "select"]
    log = result.log["ticket"]
    return {"row": name, "options": opts, "accuracy": log["accuracy_reference"] if "accuracy_reference" in log
            else log.get("accuracy"), "correct": log.get("correct_reference"), "slt_bytes": out.stat().st_size,
            "tokens": len(select[0].indices) if select else 16, "weight_density": kept / total,
            "binary": ("ConvPEP" if opts.get("binary_scope") == "convpep" else "yes") if opts.get("binary") else "no",
            "ac": nb.effective_ac, "mac": nb.effective_mac, "energy_neurobench_pj": nb.total(),
            "energy_spikformer_pj": e.total(), "energy_memory_aware_pj": nb.total(convention="memory-aware"),
            "binary_kept_epoch": next((r.get("kept_epoch") for r in result.log["rounds"] if r["stage"] == "binary"),
                                      None),
            "log": log, "slt": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="folder to keep the .slt files in (default: a temporary one)")
    a = ap.parse_args(argv)
    folder = a.keep or tempfile.mkdtemp(prefix="multisp-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    jobs = [(name, opts, a.epochs, a.seed, folder) for name, opts in ROWS.items()]
    with ProcessPoolExecutor(max_workers=len(jobs)) as pool:
        rows = list(pool.map(_row, jobs))
    dense = rows[0]
    lines = [f"MultiSp on digits (spikformer: 16 tokens, embedding 32, 1 block, T=4, {a.epochs} epochs per round, "
             f"seed {a.seed}; energy 45 nm fp32 on the 360 test digits)", "",
             "| ticket | tokens | weight density | binary | accuracy | .slt bytes | ACs / inf. | MACs / inf. | "
             "energy neurobench (pJ) | energy spikformer (pJ) | energy memory-aware (pJ) | vs dense |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = dense["energy_neurobench_pj"] / r["energy_neurobench_pj"] if r["energy_neurobench_pj"] else float("nan")
        lines.append(f"| {r['row']} | {r['tokens']} | {r['weight_density']:.3f} | {r['binary']} | "
                     f"{100 * float(r['accuracy']):.2f}% | {r['slt_bytes']:,} | {r['ac']:,.0f} | {r['mac']:,.0f} | "
                     f"{r['energy_neurobench_pj']:,.0f} | {r['energy_spikformer_pj']:,.0f} | "
                     f"{r['energy_memory_aware_pj']:,.0f} | {ratio:.2f}x |")
    md = "\n".join(lines) + "\n"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multisp.json").write_text(json.dumps({"epochs": a.epochs, "seed": a.seed, "rows": rows}, indent=1,
                                                 default=str))
    (out / "multisp.md").write_text(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
