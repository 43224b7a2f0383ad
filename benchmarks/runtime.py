"""CPU runtime benchmark: slt cpu (numba, numpy) vs PyTorch dense fp32 and sparse CSR, side by side.

    python benchmarks/runtime.py                 # full run (a few minutes on 2 cores)
    python benchmarks/runtime.py --quick         # CI smoke: small sizes, few repeats
    python benchmarks/runtime.py --json out.json --markdown out.md
    python benchmarks/runtime.py --matrix [--networks ... --weights ... --inputs ... --batches 1,64 --rate 0.15]
                                                 # issue 12's workload matrix (benchmarks/runtime_matrix.py)

One process times every system on the same ticket and inputs, interleaved repeat by
repeat (so background load hits all systems alike); peak RSS is measured per system in a
fresh subprocess (``--memory-probe``), since a process's peak cannot be reset.

Workloads: MLP 784-1024-1024-10 (binary, density 100% / 10% / 3%, T=8, direct encoding,
zero-reset LIF β=0.9, LI readout) on 28x28 digit images (sklearn's digits upscaled, or
synthetic strokes without scikit-learn), thresholds calibrated so that the hidden layers
fire at ~15% per step (measured rates reported); a VGG-style conv net on 3x32x32 (binary,
3%). Metrics: batch-1 latency (median µs per sample), batch-64 throughput (samples/s),
peak RSS, weight bytes in RAM (and bits per dense synapse), and the dense-equivalent
synaptic throughput of one 1024x1024 binary layer next to a popcount roofline (a tight
AND + popcount loop over the same number of words, measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slt_deploy.targets import cpu  # noqa: E402

from slt_deploy.ir import (  # noqa: E402
    LI,
    LIF,
    BinaryWeights,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Ticket,
    dense_weights,
    sequential,
)

BETA = 0.9
TARGET_RATE = 0.15


# ============================================================================ workloads
@dataclass
class Workload:
    name: str
    ticket: Ticket
    x: np.ndarray  # (N, *input) pool of samples
    rates: dict[str, float] = field(default_factory=dict)
    note: str = ""


def digit_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """n 28x28 images in [0, 1]: sklearn digits (8x8, nearest-neighbour upscaled) or synthetic strokes."""
    try:
        from sklearn.datasets import load_digits

        d = load_digits().images.astype(np.float32) / 16.0
        idx = (np.arange(28) * 8) // 28
        imgs = d[:, idx][:, :, idx]
        return imgs[rng.integers(0, len(imgs), n)].reshape(n, 784)
    except Exception:  # noqa: BLE001 - no scikit-learn: synthetic strokes, ~20% nonzero
        imgs = np.zeros((n, 28, 28), np.float32)
        for img in imgs:
            for _ in range(3):
                r, c = rng.integers(4, 24, 2)
                dr, dc = rng.integers(-1, 2, 2)
                for s in range(12):
                    img[np.clip(r + dr * s, 0, 27), np.clip(c + dc * s, 0, 27)] = rng.uniform(0.5, 1)
        return imgs.reshape(n, 784)


def smooth_images(n: int, rng: np.random.Generator, c: int = 3, size: int = 32) -> np.ndarray:
    """n CIFAR-sized images in [0, 1] with spatial structure (upsampled 8x8 noise)."""
    low = rng.random((n, c, 8, 8)).astype(np.float32)
    idx = (np.arange(size) * 8) // size
    return low[:, :, idx][:, :, :, idx]


def _binary(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> BinaryWeights:
    fan_in = int(np.prod(shape[1:]))
    return BinaryWeights(rng.random(shape) < p, rng.random(shape) < 0.5, np.float32(1.0 / np.sqrt(max(p * fan_in, 1))))


def _lif(name: str, shape: tuple[int, ...], threshold: float) -> LIF:
    return LIF(name, shape=shape, beta=BETA, threshold=threshold, reset="zero")


def calibrate(build: Callable[[list[float]], Ticket], n_layers: int, x: np.ndarray) -> tuple[Ticket, dict[str, float]]:
    """Per hidden layer, bisect a scalar threshold until the layer fires at ~TARGET_RATE per step."""
    thresholds = [1.0] * n_layers
    for i in range(n_layers):
        lo, hi = 1e-3, 64.0
        for _ in range(12 if n_layers > 2 else 16):
            mid = float(np.sqrt(lo * hi))
            thresholds[i] = mid
            rates = _rates(build(thresholds), x)
            rate = list(rates.values())[i]
            lo, hi = (mid, hi) if rate > TARGET_RATE else (lo, mid)
    ticket = build(thresholds)
    return ticket, _rates(ticket, x)


def _rates(ticket: Ticket, x: np.ndarray) -> dict[str, float]:
    res = cpu.run(ticket, x, backend="auto" if cpu.numba_available() else "numpy")
    out = {}
    for layer in ticket.neuron_layers():
        if isinstance(layer, LIF):
            neurons = ticket.timesteps * len(x) * np.prod(layer.shape)
            out[layer.name] = float(res.spike_counts[layer.name].sum()) / neurons
    return out


def mlp(p: float, rng: np.random.Generator, quick: bool, T: int = 8) -> Workload:
    hidden = 256 if quick else 1024
    w1, w2, w3 = _binary(rng, (hidden, 784), p), _binary(rng, (hidden, hidden), p), _binary(rng, (10, hidden), p)

    def build(th: list[float]) -> Ticket:
        return sequential((784,), [Linear("fc1", w1), _lif("lif1", (hidden,), th[0]), Linear("fc2", w2),
                                   _lif("lif2", (hidden,), th[1]), Linear("fc3", w3), LI("out", (10,), beta=BETA)], T)

    x = digit_images(256, rng)
    ticket, rates = calibrate(build, 2, x[:64])
    name = f"MLP 784-{hidden}-{hidden}-10, {p:.0%} binary"
    return Workload(name, ticket, x, rates, note=f"input nonzero {np.count_nonzero(x) / x.size:.0%}")


def vgg(p: float, rng: np.random.Generator, quick: bool, T: int = 8) -> Workload:
    c1, c2, c3 = (8, 16, 32) if quick else (32, 64, 128)
    size = 16 if quick else 32
    flat = c3 * (size // 8) ** 2
    ws = [_binary(rng, s, p) for s in [(c1, 3, 3, 3), (c1, c1, 3, 3), (c2, c1, 3, 3), (c2, c2, 3, 3),
                                       (c3, c2, 3, 3)]]
    ws[0] = _binary(rng, (c1, 3, 3, 3), max(p, 0.3))  # 27 inputs per output: keep the first layer usable
    fc = _binary(rng, (10, flat), p)
    s1, s2, s3 = size, size // 2, size // 4

    def build(th: list[float]) -> Ticket:
        return sequential((3, size, size), [
            Conv2d("conv1", ws[0], padding=1), _lif("lif1", (c1, s1, s1), th[0]),
            Conv2d("conv2", ws[1], padding=1), _lif("lif2", (c1, s1, s1), th[1]), MaxPool2d("pool1", 2),
            Conv2d("conv3", ws[2], padding=1), _lif("lif3", (c2, s2, s2), th[2]),
            Conv2d("conv4", ws[3], padding=1), _lif("lif4", (c2, s2, s2), th[3]), MaxPool2d("pool2", 2),
            Conv2d("conv5", ws[4], padding=1), _lif("lif5", (c3, s3, s3), th[4]), MaxPool2d("pool3", 2),
            Flatten("flat"), Linear("fc", fc), LI("out", (10,), beta=BETA)], T)

    x = smooth_images(64, rng, size=size).reshape(64, -1).reshape(64, 3, size, size)
    ticket, rates = calibrate(build, 5, x[:8])
    name = f"VGG-style {c1}-{c1}-{c2}-{c2}-{c3} on 3x{size}x{size}, {p:.0%} binary"
    return Workload(name, ticket, x, rates, note="first conv kept at 30% (27 inputs per output)")


# ============================================================================ systems
class TorchNet:
    """The plain PyTorch time loop a user would write: masked dense (or CSR) weights, float32."""

    def __init__(self, ticket: Ticket, sparse: bool = False) -> None:
        import torch

        self.torch = torch
        self.layers: list[tuple[str, Any]] = []
        for name in ticket.order:
            node = ticket.node(name)
            if isinstance(node, Linear):
                w = torch.tensor(dense_weights(node.weights))
                self.layers.append(("linear", w.to_sparse_csr() if sparse else w))
            elif isinstance(node, Conv2d):
                w = torch.tensor(dense_weights(node.weights))
                self.layers.append(("conv", (w, node.padding)))
            elif isinstance(node, LIF):
                self.layers.append(("lif", float(np.asarray(node.threshold).ravel()[0])))
            elif isinstance(node, LI):
                self.layers.append(("li", None))
            elif isinstance(node, MaxPool2d):
                self.layers.append(("pool", node.kernel_size[0]))
            elif isinstance(node, Flatten):
                self.layers.append(("flatten", None))
        self.sparse = sparse
        self.T = ticket.timesteps
        self.weight_bytes = 0
        for kind, w in self.layers:
            if kind == "linear":
                self.weight_bytes += (w.values().nbytes + w.crow_indices().nbytes + w.col_indices().nbytes) if sparse \
                    else w.nbytes
            elif kind == "conv":
                self.weight_bytes += w[0].nbytes

    def __call__(self, x: np.ndarray) -> Any:
        torch = self.torch
        F = torch.nn.functional
        with torch.no_grad():
            xt = torch.from_numpy(x)
            mem: dict[int, Any] = {}
            outs = []
            for _ in range(self.T):
                h = xt
                for i, (kind, w) in enumerate(self.layers):
                    if kind == "linear":
                        h = (w @ h.T).T if self.sparse else F.linear(h, w)
                    elif kind == "conv":
                        h = F.conv2d(h, w[0], padding=w[1])
                    elif kind == "lif":
                        v = BETA * mem[i] + h if i in mem else h
                        s = (v > w).float()
                        mem[i] = v * (1.0 - s)
                        h = s
                    elif kind == "li":
                        mem[i] = BETA * mem[i] + h if i in mem else h
                        h = mem[i]
                        outs.append(h)
                    elif kind == "pool":
                        h = F.max_pool2d(h, w)
                    elif kind == "flatten":
                        h = h.flatten(1)
            return torch.stack(outs)


def system_names(w: Workload) -> list[str]:
    threads = os.cpu_count() or 1
    names = ["slt cpu (numba)"] if cpu.numba_available() else []
    names += ["slt cpu (numpy)", "PyTorch dense fp32 (1 thread)", f"PyTorch dense fp32 ({threads} threads)"]
    if not any(isinstance(w.ticket.node(n), Conv2d) for n in w.ticket.order):
        names.append(f"PyTorch sparse CSR ({threads} threads)")
    return names


def make_system(w: Workload, name: str, path: Path | None = None) -> dict[str, Any]:
    """{b1: run(x) at batch 1, b64: run(x) at batch 64, bytes: weight bytes in RAM, rt: runtime}

    With ``path`` (a .slt file of the ticket) the slt runtimes load the file (bit planes
    memory-mapped), as a deployment would.
    """
    threads = os.cpu_count() or 1
    if name.startswith("slt cpu"):
        backend = "numba" if "numba" in name else "numpy"
        src = w.ticket if path is None else path
        rt1 = cpu.load(src, backend=backend, threads=1)
        rtn = cpu.load(src, backend=backend, threads=threads)
        return {"b1": rt1.run, "b64": rtn.run, "bytes": lambda: rtn.weight_bytes, "rt": rtn}
    import torch

    net = TorchNet(w.ticket, sparse="sparse" in name)
    n = 1 if "1 thread" in name else threads

    def run(x: np.ndarray) -> Any:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return net(x)

    return {"b1": run, "b64": run, "bytes": lambda: net.weight_bytes}


def systems(w: Workload) -> dict[str, dict[str, Any]]:
    return {name: make_system(w, name) for name in system_names(w)}


WARM_S = 0.02  # untimed calls per block (seconds): wakes the core and the worker threads


def time_rounds(fns: dict[str, Callable[[], Any]], rounds: int, per_block: int,
                budget_s: float) -> dict[str, list[float]]:
    """Time every system in short blocks, round after round, so background load hits all alike.

    Each block: a short pause (lets OpenMP worker threads of the previous block stop
    spinning), untimed calls for at least :data:`WARM_S` (one at least), then ``per_block``
    timed calls. After the pause a core needs some milliseconds to get back to speed (on the
    2-vCPU KVM guest: slt cpu batch 1 ran 63 µs per call for the first 8 calls after a 50 ms
    pause and 51 µs after that); one untimed call covered that for calls of milliseconds, not
    for calls of 50 µs, so the warm-up is timed, the same for every system.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():  # warm-up: compilation, first-use kernel choice, caches
        f()
        f()
    start = time.perf_counter()
    for _ in range(rounds):
        for k, f in fns.items():
            time.sleep(0.05)
            warm = time.perf_counter()
            f()
            while time.perf_counter() - warm < WARM_S:
                f()
            for _ in range(per_block):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return times


def bench_workload(w: Workload, quick: bool) -> dict[str, Any]:
    syst = systems(w)
    n = len(w.x)
    rng = np.random.default_rng(1)
    one = [w.x[i:i + 1] for i in rng.integers(0, n, 16)]
    counter = {"i": 0}

    def b1(fn: Callable[[np.ndarray], Any]) -> Callable[[], Any]:
        def call() -> Any:
            counter["i"] += 1
            return fn(one[counter["i"] % len(one)])
        return call

    batch = w.x[:64] if n >= 64 else np.concatenate([w.x] * (64 // n + 1))[:64]
    t1 = time_rounds({k: b1(s["b1"]) for k, s in syst.items()}, 2 if quick else 6, 5 if quick else 20,
                     10 if quick else 60)
    t64 = time_rounds({k: (lambda s=s: s["b64"](batch)) for k, s in syst.items()}, 2 if quick else 5,
                      1 if quick else 3, 10 if quick else 90)
    synapses = sum(int(np.prod(layer.weights.mask.shape)) for layer in w.ticket.synapse_layers())
    rows = {}
    for k, s in syst.items():
        med1 = float(np.median(t1[k]))
        med64 = float(np.median(t64[k]))
        wb = int(s["bytes"]())
        rows[k] = {
            "batch1_latency_us": med1 * 1e6,
            "batch64_throughput_sps": 64 / med64,
            "weight_bytes": wb,
            "bits_per_dense_synapse": 8 * wb / synapses,
            "repeats_b1": len(t1[k]),
            "repeats_b64": len(t64[k]),
        }
        if "rt" in s:
            rows[k]["kernels"] = s["rt"].kernels_used()
    return {"workload": w.name, "note": w.note, "timesteps": w.ticket.timesteps, "dense_synapses": synapses,
            "hidden_spike_rates": w.rates, "systems": rows}


# ============================================================================ layer vs roofline
def layer_vs_roofline(quick: bool) -> list[dict[str, Any]]:
    """One 1024x1024 binary layer on 64x8 spike rows (15% rate) vs an AND+popcount loop over its words."""
    if not cpu.numba_available():
        return []
    from numba import njit
    from slt_deploy.targets.cpu import kernels_numba as kn
    from slt_deploy.targets.cpu.stores import Coo, CscStore, PlaneStore

    @njit(cache=True, nogil=True)
    def and_popcount(a, b, reps):
        s = np.uint64(0)
        for _ in range(reps):
            for i in range(a.size):
                s += kn.popcnt(a[i] & b[i])
        return s

    n = 256 if quick else 1024
    rng = np.random.default_rng(5)
    rows = 64 * 8
    spikes = (rng.random((rows, n)) < TARGET_RATE).astype(np.uint8)
    out = []
    for p in (1.0, 0.1, 0.03):
        w = BinaryWeights(rng.random((n, n)) < p, rng.random((n, n)) < 0.5, np.float32(0.1))
        coo = Coo.from_weights(w)
        planes = PlaneStore.from_coo(coo)
        csc = CscStore.from_coo(coo)
        for kernel, store, fn in (("popcount", planes, kn.lin_popcount), ("event", csc, kn.lin_event)):
            fn(spikes, store)
            ts = []
            for _ in range(5 if quick else 15):
                t0 = time.perf_counter()
                fn(spikes, store)
                ts.append(time.perf_counter() - t0)
            t_row = float(np.median(ts)) / rows
            words = planes.neg.size * (1 if planes.mask is None else 2)
            a = rng.integers(0, 2**63, words, dtype=np.uint64)
            b = rng.integers(0, 2**63, words, dtype=np.uint64)
            reps = 50
            and_popcount(a, b, 1)
            rs = []
            for _ in range(5 if quick else 15):
                t0 = time.perf_counter()
                and_popcount(a, b, reps)
                rs.append(time.perf_counter() - t0)
            t_roof = float(np.median(rs)) / reps
            out.append({"layer": f"{n}x{n}", "density": p, "kernel": kernel, "planes": 1 if planes.mask is None else 2,
                        "gsyn_per_s": n * n / t_row / 1e9, "roofline_gsyn_per_s": n * n / t_roof / 1e9,
                        "fraction_of_roofline": t_roof / t_row, "words_per_row": words})
    return out


# ============================================================================ memory probe
def _vm_hwm_kib() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited across fork/exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory_probe(system: str, folder: str) -> dict[str, Any]:
    """Load one system from the parent's ticket.slt / x.npy and run batch 64 twice; report peak RSS.

    Runs in a fresh process, so the peak is that of importing, loading and running this
    system only (the slt runtimes load the .slt file, as a deployment would).
    """
    import slt_deploy

    base = _vm_hwm_kib()
    path = Path(folder) / "ticket.slt"
    x = np.load(Path(folder) / "x.npy")
    w = Workload(system, slt_deploy.load(path) if not system.startswith("slt cpu") else None, x)  # type: ignore[arg-type]
    before = _vm_hwm_kib()
    s = make_system(w, system, path if system.startswith("slt cpu") else None)
    batch = np.resize(w.x, (64, *w.x.shape[1:]))
    s["b64"](batch)
    s["b64"](batch)
    peak = _vm_hwm_kib()
    return {"peak_rss_mib": peak / 1024, "startup_rss_mib": base / 1024, "after_workload_build_mib": before / 1024}


WORKLOADS: dict[str, Callable[[np.random.Generator, bool], Workload]] = {
    "mlp100": lambda rng, q: mlp(1.0, rng, q),
    "mlp10": lambda rng, q: mlp(0.1, rng, q),
    "mlp3": lambda rng, q: mlp(0.03, rng, q),
    "vgg3": lambda rng, q: vgg(0.03, rng, q),
}


def probe_memory(system: str, folder: Path) -> float | None:
    cmd = [sys.executable, __file__, "--memory-probe", system, str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mib"])


# ============================================================================ report
def machine() -> dict[str, Any]:
    info = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "Core(s) per socket", "Thread(s) per core", "L2 cache", "L3 cache",
                               "Flags"):
                v = val.strip()
                if key.strip() == "Flags":
                    v = " ".join(f for f in v.split() if f in ("popcnt", "avx2", "avx512f", "avx512_vpopcntdq", "bmi1",
                                                               "bmi2"))
                info[key.strip()] = v
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        pass
    info["loadavg_start"] = os.getloadavg()
    return info


def markdown(report: dict[str, Any]) -> str:
    lines = []
    m = report["machine"]
    lines.append(f"Machine: {m.get('Model name', '?')}, {m.get('cpus')} CPUs ({m.get('Core(s) per socket', '?')} "
                 f"cores/socket), flags: {m.get('Flags', '?')}; numpy {m.get('numpy')}, numba {m.get('numba', '-')}, "
                 f"torch {m.get('torch', '-')}. Load average at start {m['loadavg_start'][0]:.2f}, "
                 f"end {report['loadavg_end'][0]:.2f}.")
    lines.append("")
    for wl in report["workloads"]:
        rates = ", ".join(f"{k} {v:.1%}" for k, v in wl["hidden_spike_rates"].items())
        lines.append(f"### {wl['workload']} (T={wl['timesteps']})")
        lines.append("")
        lines.append(f"Hidden spike rates per step: {rates}. {wl['note']}.")
        lines.append("")
        lines.append("| system | batch-1 latency (µs/sample) | batch-64 throughput (samples/s) | peak RSS (MiB) | "
                     "weights in RAM | bits / dense synapse |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for name, r in wl["systems"].items():
            rss = r.get("peak_rss_mib")
            lines.append(f"| {name} | {r['batch1_latency_us']:.0f} | {r['batch64_throughput_sps']:.0f} | "
                         f"{'-' if rss is None else f'{rss:.0f}'} | {r['weight_bytes'] / 1024:.0f} KiB | "
                         f"{r['bits_per_dense_synapse']:.2f} |")
        if "ratios" in wl:
            lines.append("")
            lines.append("Ratios: " + "; ".join(f"{k}: {v:.1f}x" for k, v in wl["ratios"].items()) + ".")
        if any("kernels" in r for r in wl["systems"].values()):
            ks = next(r["kernels"] for r in wl["systems"].values() if "kernels" in r)
            lines.append("")
            lines.append("Kernels chosen (numba): " + ", ".join(f"{k}: {v}" for k, v in ks.items()) + ".")
        lines.append("")
    if report["layer"]:
        lines.append("### One binary layer vs the popcount roofline (64x8 spike rows at 15%)")
        lines.append("")
        lines.append("| layer | density | kernel | dense-equivalent Gsyn/s | roofline Gsyn/s | fraction of roofline |")
        lines.append("|---|---:|---|---:|---:|---:|")
        for r in report["layer"]:
            lines.append(f"| {r['layer']} | {r['density']:.0%} | {r['kernel']} | {r['gsyn_per_s']:.1f} | "
                         f"{r['roofline_gsyn_per_s']:.1f} | {r['fraction_of_roofline']:.0%} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (CI smoke)")
    ap.add_argument("--json", type=Path, help="write the report as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the Markdown table here")
    ap.add_argument("--workloads", default="mlp100,mlp10,mlp3,vgg3", help="comma-separated subset")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-system peak-RSS subprocesses")
    ap.add_argument("--matrix", action="store_true", help="the workload matrix (benchmarks/runtime_matrix.py)")
    ap.add_argument("--networks", default="mlp784,digits-mlp,vgg,digits-conv", help="matrix: networks")
    ap.add_argument("--weights", default="binary,float32", help="matrix: weight kinds")
    ap.add_argument("--inputs", default="standardized,images255,spikes5,spikes20", help="matrix: input kinds")
    ap.add_argument("--batches", default="1,64", help="matrix: batch sizes (1 and/or 64)")
    ap.add_argument("--rate", type=float, default=TARGET_RATE, help="matrix: hidden firing rate per step")
    ap.add_argument("--systems", default=None, help="matrix: comma-separated subset of the systems")
    ap.add_argument("--memory-probe", nargs=2, metavar=("SYSTEM", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe[0], args.memory_probe[1])))
        return 0
    if args.matrix:
        return _matrix(args, argv)
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "workloads": []}
    for key in args.workloads.split(","):
        t0 = time.perf_counter()
        w = WORKLOADS[key](np.random.default_rng(0), args.quick)
        res = bench_workload(w, args.quick)
        if not args.no_memory:
            import tempfile

            import slt_deploy

            with tempfile.TemporaryDirectory() as folder:
                slt_deploy.save(w.ticket, Path(folder) / "ticket.slt")
                np.save(Path(folder) / "x.npy", w.x[:64])
                for name in res["systems"]:
                    res["systems"][name]["peak_rss_mib"] = probe_memory(name, Path(folder))
        s = res["systems"]
        ratios = {}
        numba_row = s.get("slt cpu (numba)")
        dense1 = s.get("PyTorch dense fp32 (1 thread)")
        densen = next((v for k, v in s.items() if k.startswith("PyTorch dense") and "1 thread" not in k), None)
        if numba_row and dense1:
            ratios["batch-1 latency, PyTorch dense 1 thread / slt numba"] = \
                dense1["batch1_latency_us"] / numba_row["batch1_latency_us"]
        if numba_row and densen:
            ratios["batch-64 throughput, slt numba / PyTorch dense all threads"] = \
                numba_row["batch64_throughput_sps"] / densen["batch64_throughput_sps"]
        res["ratios"] = ratios
        res["seconds"] = time.perf_counter() - t0
        report["workloads"].append(res)
        print(f"[bench] {w.name}: {res['seconds']:.0f} s", file=sys.stderr)
    report["layer"] = layer_vs_roofline(args.quick)
    report["loadavg_end"] = os.getloadavg()
    text = markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    if args.markdown:
        args.markdown.write_text(text)
    print(json.dumps(report, default=float))
    print(text)
    return 0


def _matrix(args: argparse.Namespace, argv: list[str] | None) -> int:
    import runtime_matrix as rm

    try:  # one BLAS thread: numpy's OpenBLAS threads next to torch's OpenMP workers on 2 shared cores
        from threadpoolctl import threadpool_limits  # made a 1x784 @ 784x1024 matvec 28 ms instead of 0.2 ms

        threadpool_limits(1, user_api="blas")
    except ImportError:
        pass
    systems = list(rm.SYSTEMS) if args.systems is None else args.systems.split(",")
    if not cpu.numba_available():
        systems = [s for s in systems if s != "slt cpu (numba)"]
    rows = rm.run_matrix(args.networks.split(","), args.weights.split(","), args.inputs.split(","),
                         [int(b) for b in args.batches.split(",")], args.rate, systems, args.quick,
                         lambda m: print(m, file=sys.stderr))
    command = "python benchmarks/runtime.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"machine": machine(), "command": command, "rate": args.rate, "rows": rows,
              "loadavg_end": os.getloadavg()}
    text = rm.markdown(rows, command)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
