"""Spike x spike attention products on the CPU runtime: float32 BLAS vs AND + popcount (not a test).

    .venv/bin/python benchmarks/attention.py [--out benchmarks/results] [--rounds 9]

For each shape ``(rows R, m, k, n)`` (R = T·batch·heads products of ``(m, k) x (k, n)`` 0/1 matrices at
spike rate 0.2) both exact kernels of ``slt_deploy/targets/cpu/tokens.py`` run interleaved in one
process (``blas_matmul``: float32 matmul of 0/1 values; ``popcount_matmul``: rows bit-packed along k,
AND, popcount), results checked equal; medians of ``--rounds`` timings and the ratio popcount / blas.
The runtime does not use a fixed rule: a MatMul node times both kernels on its first spike x spike
call and keeps the faster, because the winner changes with the shape (this table) and the machine.
Writes ``attention.json`` and ``attention.md`` to ``--out`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slt_deploy.targets.cpu.tokens import blas_matmul, popcount_matmul  # noqa: E402

SHAPES = [(64, 16, 8, 16), (64, 16, 16, 16), (64, 64, 32, 64), (64, 16, 256, 16), (8, 64, 1024, 64),
          (8, 256, 64, 256), (8, 16, 4096, 16)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for R, m, k, n in SHAPES:
        x = (rng.random((R, m, k)) < 0.2).astype(np.uint8)
        y = (rng.random((R, k, n)) < 0.2).astype(np.uint8)
        assert np.array_equal(blas_matmul(x, y), popcount_matmul(x, y))
        times: dict[str, list[float]] = {"blas": [], "popcount": []}
        for _ in range(a.rounds):  # interleaved
            for name, fn in (("blas", blas_matmul), ("popcount", popcount_matmul)):
                t0 = time.perf_counter()
                fn(x, y)
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(v)) for name, v in times.items()}
        rows.append({"shape": [R, m, k, n], "blas_us": 1e6 * med["blas"], "popcount_us": 1e6 * med["popcount"],
                     "popcount_over_blas": med["popcount"] / med["blas"]})
    lines = [f"Spike x spike MatMul kernels, medians of {a.rounds} interleaved runs, rate 0.2 "
             f"({platform.processor() or platform.machine()}, numpy {np.__version__})", "",
             "| R x (m, k) x (k, n) | blas (µs) | popcount (µs) | popcount / blas |", "|---|---|---|---|"]
    for r in rows:
        R, m, k, n = r["shape"]
        lines.append(f"| {R} x ({m}, {k}) x ({k}, {n}) | {r['blas_us']:,.0f} | {r['popcount_us']:,.0f} | "
                     f"{r['popcount_over_blas']:.2f} |")
    md = "\n".join(lines) + "\n"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention.json").write_text(json.dumps({"rounds": a.rounds, "rows": rows}, indent=1))
    (out / "attention.md").write_text(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
