"""Rate encoding vs the run it feeds, on the CPU target, side by side in one process.

    python benchmarks/rate_encoding.py                  # MLP 784-1024-1024-10, batch 64, T=8
    python benchmarks/rate_encoding.py --quick          # CI smoke: hidden 256, few repeats
    python benchmarks/rate_encoding.py --json out.json --markdown out.md

Workload: the MLP of benchmarks/runtime.py (binary, 10% density, zero-reset LIF, LI readout)
with ``Encoding("rate", seed)``, on 64 digit images in [0, 1]. Systems, timed interleaved
block by block (benchmarks/runtime.py's ``time_rounds``), medians reported:

- ``encode numpy``: :func:`slt_deploy.ratecode.spikes` (keys, thresholds, T steps of draws);
- ``encode numba``: the CPU runtime's compiled twin (``targets/cpu/rate_numba.py``);
- ``encode pcg64 (old)``: what every target did before (one ``Generator(PCG64(seed)).random``
  of ``(batch, *in)`` per step), for comparison only;
- ``cpu run (numba)`` / ``cpu run (numpy)``: ``Runtime.run`` of the rate ticket, encoding included;
- ``cpu run, spikes given (numba)``: the same network fed the already-encoded spikes
  (``spikes`` encoding), i.e. the run without the encoding.

The report gives each median and the share of the encoding in the run of the same backend.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runtime import machine, mlp, time_rounds  # noqa: E402
from slt_deploy.targets import cpu  # noqa: E402

from slt_deploy import ratecode  # noqa: E402
from slt_deploy.ir import Encoding  # noqa: E402

SEED = 7


def _old_pcg64(x: np.ndarray, T: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(SEED))
    out = np.empty((T, *x.shape), np.uint8)
    for t in range(T):
        out[t] = rng.random(x.shape) < x
    return out


def bench(quick: bool, batch: int = 64) -> dict[str, Any]:
    w = mlp(0.1, np.random.default_rng(0), quick)
    rate = w.ticket.with_encoding(Encoding("rate", SEED))
    spikes_twin = w.ticket.with_encoding(Encoding("spikes"))
    x = np.ascontiguousarray(w.x[:batch], np.float32)
    T = rate.timesteps
    encoded = ratecode.spikes(rate.encoding, x, T).astype(np.float32)
    fns: dict[str, Any] = {"encode numpy": lambda: ratecode.spikes(rate.encoding, x, T),
                           "encode pcg64 (old)": lambda: _old_pcg64(x, T)}
    runtimes = {"numpy": cpu.load(rate, backend="numpy")}
    if cpu.runtime.numba_available():
        from slt_deploy.targets.cpu import rate_numba

        fns["encode numba"] = lambda: rate_numba.spikes(rate.encoding, x, T)
        runtimes["numba"] = cpu.load(rate, backend="numba")
        twin = cpu.load(spikes_twin, backend="numba")
        fns["cpu run, spikes given (numba)"] = lambda: twin.run(encoded)
        np.testing.assert_array_equal(twin.run(encoded).output, runtimes["numba"].run(x).output)
        np.testing.assert_array_equal(rate_numba.spikes(rate.encoding, x, T), ratecode.spikes(rate.encoding, x, T))
    for name, rt in runtimes.items():
        fns[f"cpu run ({name})"] = (lambda r: lambda: r.run(x))(rt)
    rounds, per_block = (3, 3) if quick else (15, 5)
    times = time_rounds(fns, rounds, per_block, budget_s=60 if quick else 240)
    med = {k: float(np.median(v)) for k, v in times.items()}
    rows = [{"system": k, "median_ms": 1e3 * v, "p10_ms": 1e3 * float(np.percentile(times[k], 10)),
             "p90_ms": 1e3 * float(np.percentile(times[k], 90)), "samples": len(times[k])} for k, v in med.items()]
    shares = {f"encode {b} / cpu run ({b})": med[f"encode {b}"] / med[f"cpu run ({b})"]
              for b in runtimes if f"encode {b}" in med}
    shares["encode numpy / encode pcg64 (old)"] = med["encode numpy"] / med["encode pcg64 (old)"]
    return {"workload": f"{w.name}, rate encoding, batch {batch}, T={T}", "machine": machine(), "rows": rows,
            "ratios": shares}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Workload: {report['workload']}.", "",
             "| system | median ms | p10 ms | p90 ms | samples |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['system']} | {r['median_ms']:.3f} | {r['p10_ms']:.3f} | {r['p90_ms']:.3f} | {r['samples']} |"
              for r in report["rows"]]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in report["ratios"].items()]
    m = report["machine"]
    lines += ["", f"Machine: {m.get('Model name', '?')}, {m.get('cpus')} CPUs, load average at start "
                  f"{tuple(round(v, 2) for v in m.get('loadavg_start', ()))}; numpy {m.get('numpy')}, "
                  f"numba {m.get('numba', '-')}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI smoke)")
    ap.add_argument("--json", type=Path, help="write the report as JSON")
    ap.add_argument("--markdown", type=Path, help="write the report as Markdown")
    args = ap.parse_args(argv)
    report = bench(args.quick)
    text = markdown(report)
    print(text)
    print(json.dumps(report["ratios"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
