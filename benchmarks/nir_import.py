"""NIR import of large foreign graphs: the linear wiring (exporters/nir/_wire.py) vs the previous
one-search-per-edge wiring, side by side in one process.

    python benchmarks/nir_import.py                     # 2,003 .. 24,002 nodes, four listing orders
    python benchmarks/nir_import.py --quick             # CI smoke: 602 and 4,001 nodes
    python benchmarks/nir_import.py --json out.json --markdown out.md

Workload: a foreign NIR graph (no slt metadata) Input -> (Affine 16x16 -> LIF) x k -> Output with
a recurrent Affine from every LIF back into its own Affine (a self-loop through a neuron), so
every layer has one recurrent edge to classify: ``2 + 3k`` nodes. Reported: the median wall
time of ``from_nir_graph`` (the whole import: wiring, schedule, node conversion, Ticket
validation) and of the wiring step alone, new vs the previous algorithm (kept here only as
the baseline: for each edge a breadth-first search of the kept graph).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slt_deploy.exporters.nir import from_nir_graph  # noqa: E402
from slt_deploy.exporters.nir._wire import mark_recurrent  # noqa: E402


def graph(k: int) -> Any:
    import nir

    n = 16
    rng = np.random.default_rng(0)
    nodes: dict[str, Any] = {"input": nir.Input(np.array([n])), "output": nir.Output(np.array([n]))}
    edges = []
    prev = "input"
    for i in range(k):
        w = (rng.standard_normal((n, n)) / 4).astype(np.float32)
        nodes[f"fc{i}"] = nir.Affine(w, np.zeros(n, np.float32))
        tau = np.full(n, 2e-3, np.float32)
        nodes[f"lif{i}"] = nir.LIF(tau=tau, r=tau / np.float32(1e-4),
                                   v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32),
                                   v_reset=np.zeros(n, np.float32))
        nodes[f"rec{i}"] = nir.Linear((np.eye(n) / 8).astype(np.float32))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}"), (f"lif{i}", f"rec{i}"), (f"rec{i}", f"fc{i}")]
        prev = f"lif{i}"
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-4}, type_check=False)  # nir checks in O(V E)


def old_mark(nodes: list[str], edges: list[tuple[str, str]], is_neuron: dict[str, bool]) -> list[tuple[str, str, bool]]:
    """The previous wiring (one search per edge), for comparison only."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}

    def reaches(a: str, b: str) -> bool:
        seen, todo = {a}, [a]
        while todo:
            for c in succ[todo.pop()]:
                if c == b:
                    return True
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        return a == b

    for s, d in edges:
        if not is_neuron[s]:
            succ[s].append(d)
    for s, d in edges:
        if not is_neuron[s] and reaches(d, s):
            raise ValueError("cycle")
    marked = []
    for s, d in edges:
        rec = False
        if is_neuron[s]:
            rec = reaches(d, s)
            if not rec:
                succ[s].append(d)
        marked.append((s, d, rec))
    return marked


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def orders(g: Any) -> dict[str, tuple[Any, list[str], list[tuple[str, str]]]]:
    """The same graph with its nodes and edges listed in four orders (a file may list them in any)."""
    import random

    import nir

    names = list(g.nodes)
    edges = [(str(a), str(b)) for a, b in g.edges]
    rng = random.Random(0)
    out = {}
    for label, nn, ee in (("file order", names, edges), ("edges reversed", names, edges[::-1]),
                          ("both reversed", names[::-1], edges[::-1]),
                          ("shuffled", rng.sample(names, len(names)), rng.sample(edges, len(edges)))):
        out[label] = (nir.NIRGraph(nodes={n: g.nodes[n] for n in nn}, edges=ee, metadata=g.metadata, type_check=False),
                      nn, ee)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    sizes = [200, 1333] if args.quick else [667, 2667, 8000]
    rows = []
    for k in sizes:
        base = graph(k)
        is_neuron = {n: type(v).__name__ == "LIF" for n, v in base.nodes.items()}
        for label, (g, names, edges) in orders(base).items():
            new = mark_recurrent(names, edges, is_neuron)
            row = {"nodes": len(names), "edges": len(edges), "order": label,
                   "import_s": timed(lambda g=g: from_nir_graph(g, timesteps=4), 3),
                   "wire_new_s": timed(lambda nn=names, ee=edges, isn=is_neuron: mark_recurrent(nn, ee, isn), 3)}
            t0 = time.perf_counter()
            assert old_mark(names, edges, is_neuron) == new  # the same marks as before
            row["wire_old_s"] = time.perf_counter() - t0
            row["ratio_old_new"] = row["wire_old_s"] / row["wire_new_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"workload": __doc__.split("Workload: ")[1].split("\n\n")[0],
                                               "rows": rows}, indent=2))
    if args.markdown:
        lines = ["| nodes | edges | order | whole import, new (s) | wiring new (s) | wiring old (s) | old / new |",
                 "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['nodes']:,} | {r['edges']:,} | {r['order']} | {r['import_s']:.2f} | "
                         f"{r['wire_new_s']:.3f} | {r['wire_old_s']:.2f} | {r['ratio_old_new']:.1f}x |")
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
