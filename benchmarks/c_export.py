"""C export benchmark: host-compiled generated C vs the CPU runtime, batch-1 inference latency.

    python benchmarks/c_export.py                    # full run (about a minute on 2 cores)
    python benchmarks/c_export.py --quick            # CI smoke: fewer samples and repeats
    python benchmarks/c_export.py --ticket t.slt     # add tickets (examples/*.slt are added when present)
    python benchmarks/c_export.py --json out.json --markdown out.md

Per workload the generated C (float mode, ``gcc -O2 -ffp-contract=off``; 32-bit words, as on
a microcontroller) runs ``NAME_infer`` (reset + T steps, one sample) in a harness process
that times every call with ``clock_gettime``; the CPU runtime (``slt_deploy.targets.cpu``,
prepared once, ``run`` on a batch of one) and the numpy reference are timed in this
process. Systems alternate round by round so background load hits all alike; medians
over all calls are reported, in microseconds per sample, with the C : CPU ratio. Every
system's class counts are checked equal before timing (exact-by-design). The Cortex-M4
flash/RAM figures of each export (arm-none-eabi-gcc when installed) are listed alongside.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slt_deploy.exporters.c import export_c, harness  # noqa: E402

from slt_deploy import api  # noqa: E402
from slt_deploy.ir import (  # noqa: E402
    LI,
    LIF,
    Add,
    BinaryWeights,
    Conv2d,
    Edge,
    Encoding,
    Flatten,
    Input,
    Linear,
    MaxPool2d,
    Output,
    Ticket,
    sequential,
)
from slt_deploy.reference import simulate  # noqa: E402


@dataclass
class Workload:
    name: str
    ticket: Ticket
    x: np.ndarray        # (N, *in) direct/rate samples, or (T, N, *in) spike trains
    note: str = ""

    def sample(self, i: int) -> np.ndarray:
        return self.x[:, i:i + 1] if self.ticket.encoding.kind == "spikes" else self.x[i:i + 1]

    @property
    def n(self) -> int:
        return self.x.shape[1] if self.ticket.encoding.kind == "spikes" else self.x.shape[0]


def _binary(rng: np.random.Generator, shape: tuple[int, ...], density: float, alpha: float) -> BinaryWeights:
    return BinaryWeights(rng.random(shape) < density, rng.random(shape) < 0.45, np.full(shape[0], alpha, np.float32))


def _digits(n: int, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    try:
        from sklearn.datasets import load_digits

        d = load_digits().images.astype(np.float32) / 16.0
    except Exception:  # noqa: BLE001 - no scikit-learn: random multiples of 1/16
        d = (rng.integers(0, 17, (256, 8, 8)) / 16).astype(np.float32)
    idx = (np.arange(size) * 8) // size
    return d[rng.integers(0, len(d), n)][:, idx][:, :, idx].astype(np.float32)


def workloads(n: int, extra: list[Path]) -> list[Workload]:
    rng = np.random.default_rng(0)
    out = []
    t = sequential((64,), [Linear("fc1", _binary(rng, (128, 64), 0.25, 0.35)), LIF("l1", (128,), beta=0.9),
                           Linear("fc2", _binary(rng, (10, 128), 0.25, 0.3)), LI("ro", (10,), beta=0.9)], 8)
    out.append(Workload("mlp 64-128-10 (digits-like), binary 25%, direct, T=8", t, _digits(n, rng).reshape(n, 64)))
    t = sequential((784,), [Linear("fc1", _binary(rng, (512, 784), 0.1, 0.1)), LIF("l1", (512,), beta=0.9),
                            Linear("fc2", _binary(rng, (10, 512), 0.1, 0.3)), LIF("l2", (10,), beta=0.9)], 8,
                   Encoding("rate", 42))
    out.append(Workload("mlp 784-512-10, binary 10%, rate, T=8", t, _digits(n, rng, 28).reshape(n, 784)))
    t = sequential((1, 28, 28), [
        Conv2d("c1", _binary(rng, (8, 1, 3, 3), 0.5, 0.6), padding=1), LIF("l1", (8, 28, 28), beta=0.9),
        MaxPool2d("p1", 2), Conv2d("c2", _binary(rng, (16, 8, 3, 3), 0.3, 0.4), padding=1),
        LIF("l2", (16, 14, 14), beta=0.9), MaxPool2d("p2", 2), Flatten("f"),
        Linear("fc", _binary(rng, (10, 784), 0.2, 0.3)), LI("ro", (10,), beta=0.9)], 4)
    out.append(Workload("conv 1x28x28: 8c3-mp-16c3-mp-fc10, binary 20-50%, direct, T=4", t,
                        _digits(n, rng, 28).reshape(n, 1, 28, 28)))
    nodes = [Input("in", shape=(40,)), Linear("fi", _binary(rng, (64, 40), 0.3, 0.4)),
             Linear("fr", _binary(rng, (64, 64), 0.1, 0.3)), Add("mix"), LIF("l", (64,), beta=0.9),
             Linear("fo", _binary(rng, (10, 64), 0.3, 0.3)), LIF("lo", (10,), beta=0.9), Output("out")]
    edges = [Edge("in", "fi"), Edge("fi", "mix"), Edge("fr", "mix"), Edge("mix", "l"),
             Edge("l", "fr", recurrent=True), Edge("l", "fo"), Edge("fo", "lo"), Edge("lo", "out")]
    t = Ticket(tuple(nodes), tuple(edges), 16, Encoding("spikes"))
    out.append(Workload("recurrent 40-64(rec)-10, binary, spikes, T=16", t,
                        (rng.random((16, n, 40)) < 0.2).astype(np.float32)))
    for path in extra:
        t = api.load(path)
        shape = t.input_shape
        if t.encoding.kind == "spikes":
            x = (rng.random((t.timesteps, n, *shape)) < 0.2).astype(np.float32)
        elif shape == (64,):
            x = _digits(n, rng).reshape(n, 64)
        else:
            x = rng.random((n, *shape)).astype(np.float32)
        out.append(Workload(f"{path.name} ({t.encoding.kind}, T={t.timesteps})", t, x, note=str(path)))
    return out


def cpu_runner(ticket: Ticket):
    """A batch-1 runner of the CPU runtime, or the public API, or None when neither is available."""
    try:
        from slt_deploy.targets import cpu

        rt = cpu.load(ticket)
        return "cpu", rt.run
    except Exception:  # noqa: BLE001 - the CPU runtime is optional here
        try:
            api.run(ticket, np.zeros((1, *ticket.input_shape), np.float32) if ticket.encoding.kind != "spikes"
                    else np.zeros((ticket.timesteps, 1, *ticket.input_shape), np.float32), target="cpu")
            return "cpu", lambda x: api.run(ticket, x, target="cpu")
        except Exception:  # noqa: BLE001
            return None, None


def bench(w: Workload, rounds: int, reps: int, tmp: Path) -> dict[str, Any]:
    folder = tmp / f"w{abs(hash(w.name)) % 10**8}"
    report = export_c(w.ticket, folder, prefix="net", force=True)
    h = harness.build(folder, "net", w.ticket)
    # exactness first: C counts == reference counts (== CPU runtime counts)
    got = h.run(w.x, folder)
    ref = simulate(w.ticket, w.x) if w.ticket.encoding.kind != "rate" else None
    if ref is not None:
        assert np.array_equal(got["output"], ref.output), f"{w.name}: C output differs from the reference"
    name, run_cpu = cpu_runner(w.ticket)
    if run_cpu is not None and w.ticket.encoding.kind != "rate":
        c = np.concatenate([run_cpu(w.sample(i)).output for i in range(w.n)], axis=1)
        assert np.array_equal(c, got["output"]), f"{w.name}: CPU runtime output differs from C"
    times: dict[str, list[float]] = {"c": [], "cpu": [], "reference": []}
    n = w.n
    for _ in range(rounds):
        ns = h.time_infer(w.x, reps, folder)
        times["c"] += list(ns.reshape(-1) / 1e3)
        if run_cpu is not None:
            for i in range(n):
                xi = w.sample(i)
                for _ in range(reps):
                    t0 = time.perf_counter()
                    run_cpu(xi)
                    times["cpu"].append((time.perf_counter() - t0) * 1e6)
        for i in range(min(n, 4)):
            t0 = time.perf_counter()
            simulate(w.ticket, w.sample(i), record=False)
            times["reference"].append((time.perf_counter() - t0) * 1e6)
    med = {k: float(np.median(v)) if v else None for k, v in times.items()}
    return {
        "workload": w.name, "note": w.note, "timesteps": w.ticket.timesteps, "samples": n,
        "c_us": med["c"], "cpu_us": med["cpu"], "reference_us": med["reference"], "cpu_system": name,
        "cpu_over_c": (med["cpu"] / med["c"]) if med["cpu"] and med["c"] else None,
        "calls": {k: len(v) for k, v in times.items()},
        "m4_flash_bytes": report["flash_bytes"], "m4_ram_bytes": report["ram_bytes"],
        "m4_size_source": report["size_source"], "layouts": [lay["layout"] for lay in report["layers"]],
    }


def markdown(report: dict[str, Any]) -> str:
    rows = ["| workload | C (gcc -O2) µs | CPU runtime µs | CPU / C | reference µs | M4 flash | M4 RAM |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        cpu = f"{r['cpu_us']:.1f}" if r["cpu_us"] else "n/a"
        ratio = f"{r['cpu_over_c']:.1f}x" if r["cpu_over_c"] else "n/a"
        rows.append(f"| {r['workload']} | {r['c_us']:.1f} | {cpu} | {ratio} | {r['reference_us']:.0f} | "
                    f"{r['m4_flash_bytes']:,} B | {r['m4_ram_bytes']:,} B |")
    head = (f"Batch-1 latency per sample (median of {report['rounds']} rounds x {report['reps']} calls per sample), "
            f"{report['machine']}. C: NAME_infer timed in-process; CPU runtime and reference: one `run` call from "
            f"Python. M4 sizes: {report['results'][0]['m4_size_source'] if report['results'] else ''}.")
    return head + "\n\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few samples and repeats (CI smoke)")
    ap.add_argument("--ticket", type=Path, action="append", default=[], help="also benchmark this .slt ticket")
    ap.add_argument("--json", type=Path, help="write the report as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the Markdown table here")
    args = ap.parse_args(argv)
    extra = list(args.ticket) + sorted((ROOT / "examples").glob("**/*.slt"))
    n, rounds, reps = (4, 2, 5) if args.quick else (16, 5, 20)
    results = []
    with tempfile.TemporaryDirectory(prefix="slt-c-bench-") as tmp:
        for w in workloads(n, extra):
            print(f"[c_export] {w.name} ...", file=sys.stderr)
            results.append(bench(w, rounds, reps, Path(tmp)))
    report = {"benchmark": "c_export", "machine": f"{platform.machine()} {platform.processor() or ''} "
              f"{platform.system()}".strip(), "python": platform.python_version(), "rounds": rounds, "reps": reps,
              "compiler": harness.host_compiler(), "flags": " ".join(harness.STRICT_FLAGS), "results": results}
    text = markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(text)
    print(json.dumps(report))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
