"""Workload matrix of issue 12: every system on the same ticket and inputs, interleaved, medians.

    python benchmarks/runtime.py --matrix                      # the full matrix (long on 2 cores)
    python benchmarks/runtime.py --matrix --networks vgg,digits-conv --weights float32,binary \\
        --inputs standardized --batches 1,64 --json m.json --markdown m.md   # a spot check

Matrix: {MLP 784-1024-1024-10 (3%), digits MLP 64-128-10 (30%), VGG-style conv on 3x32x32
(3%, first conv 30%), digits conv 8-16 + fc on 1x8x8 (30%)} x {binary ±α, float32 weights
(same masks)} x {standardized float32 features, images/255 (direct input), spike trains at 5%
and 20%} x {batch 1, 64}. Hidden thresholds are calibrated so the hidden LIF layers fire at
``--rate`` per step (default 15%; ``--rate 0.4`` gives the 30-50% setting); measured rates
are reported. Systems: slt cpu (numba, numpy), slt reference, slt torch target, ONNX Runtime
on the exported model, snnTorch (``snn.Leaky``, zero reset, the same masked weights) and the
plain PyTorch dense loop. Each row reports medians (batch 1: µs per sample over 16 different
samples; batch 64: samples/s), ratios, hidden firing rates and the slow-path share of the
exact-sum rule (``diagnostics.slow_path_sums`` of the slt cpu run / synaptic sums computed).
numpy's BLAS runs on one thread (threadpoolctl): with OpenBLAS's own threads next to torch's
OpenMP workers on 2 shared cores, one 1x784 @ 784x1024 product took 28 ms instead of 0.2 ms.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from slt_deploy.targets import cpu

from slt_deploy.ir import (
    LI,
    LIF,
    BinaryWeights,
    Conv2d,
    Encoding,
    Flatten,
    FloatWeights,
    Linear,
    MaxPool2d,
    Ticket,
    sequential,
)

BETA = 0.9
T = 8
NETWORKS = ("mlp784", "digits-mlp", "vgg", "digits-conv")
WEIGHTS = ("binary", "float32")
INPUTS = ("standardized", "images255", "spikes5", "spikes20")


# ============================================================================ data
def images(network: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Images with 256 grey levels as integers 0..255 (float32), shaped for ``network``."""
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32)  # 0..16
    pick = digits[rng.integers(0, len(digits), n)]
    if network == "mlp784":
        idx = (np.arange(28) * 8) // 28
        return np.round(pick[:, idx][:, :, idx] * 255 / 16).reshape(n, 784)
    if network == "digits-mlp":
        return np.round(pick * 255 / 16).reshape(n, 64)
    if network == "digits-conv":
        return np.round(pick * 255 / 16)[:, None]
    low = rng.random((n, 3, 8, 8)).astype(np.float32)  # vgg: smooth 3x32x32 images
    idx = (np.arange(32) * 8) // 32
    return np.round(low[:, :, idx][:, :, :, idx] * 255)


def inputs(kind: str, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, *in)`` float32 for direct kinds, ``(T, N, *in)`` 0/1 spikes for spike trains."""
    if kind == "images255":
        return (grey / np.float32(255)).astype(np.float32)
    if kind == "standardized":
        mean, std = grey.mean(axis=0), grey.std(axis=0)
        return ((grey - mean) / np.where(std > 0, std, 1)).astype(np.float32)
    p = {"spikes5": 0.05, "spikes20": 0.20}[kind]
    return (rng.random((T, *grey.shape)) < p).astype(np.float32)


# ============================================================================ networks
def _weights(rng: np.random.Generator, shape: tuple[int, ...], p: float, kind: str) -> BinaryWeights | FloatWeights:
    mask = rng.random(shape) < p
    fan = max(p * float(np.prod(shape[1:])), 1.0)
    if kind == "binary":
        return BinaryWeights(mask, rng.random(shape) < 0.5, np.float32(1.0 / np.sqrt(fan)))
    return FloatWeights(mask, (rng.normal(0, 1.0 / np.sqrt(fan), shape) * mask).astype(np.float32))


def builder(network: str, kind: str, encoding: Encoding, rng: np.random.Generator) -> tuple[Callable, int]:
    """(thresholds -> Ticket, number of hidden LIF layers)."""
    def lif(name: str, shape: tuple[int, ...], th: float) -> LIF:
        return LIF(name, shape=shape, beta=BETA, threshold=th, reset="zero")

    if network in ("mlp784", "digits-mlp"):
        n_in, hid, p = (784, 1024, 0.03) if network == "mlp784" else (64, 128, 0.3)
        w = [_weights(rng, (hid, n_in), p, kind), _weights(rng, (hid, hid), p, kind), _weights(rng, (10, hid), p, kind)]
        layers = 2 if network == "mlp784" else 1

        def build(th: list[float]) -> Ticket:
            nodes = [Linear("fc1", w[0]), lif("lif1", (hid,), th[0])]
            if layers == 2:
                nodes += [Linear("fc2", w[1]), lif("lif2", (hid,), th[1])]
            return sequential((n_in,), [*nodes, Linear("out_fc", w[2]), LI("out", (10,), beta=BETA)], T, encoding)
        return build, layers
    if network == "digits-conv":
        w = [_weights(rng, (8, 1, 3, 3), 0.6, kind), _weights(rng, (16, 8, 3, 3), 0.3, kind),
             _weights(rng, (10, 144), 0.3, kind)]

        def build(th: list[float]) -> Ticket:
            return sequential((1, 8, 8), [Conv2d("conv1", w[0], padding=1), lif("lif1", (8, 8, 8), th[0]),
                                          Conv2d("conv2", w[1]), lif("lif2", (16, 6, 6), th[1]),
                                          MaxPool2d("pool", 2), Flatten("flat"), Linear("fc", w[2]),
                                          LI("out", (10,), beta=BETA)], T, encoding)
        return build, 2
    c1, c2, c3 = 32, 64, 128
    shapes = [(c1, 3, 3, 3), (c1, c1, 3, 3), (c2, c1, 3, 3), (c2, c2, 3, 3), (c3, c2, 3, 3)]
    w = [_weights(rng, s, 0.3 if i == 0 else 0.03, kind) for i, s in enumerate(shapes)]
    fc = _weights(rng, (10, c3 * 16), 0.03, kind)

    def build(th: list[float]) -> Ticket:
        return sequential((3, 32, 32), [
            Conv2d("conv1", w[0], padding=1), lif("lif1", (c1, 32, 32), th[0]),
            Conv2d("conv2", w[1], padding=1), lif("lif2", (c1, 32, 32), th[1]), MaxPool2d("pool1", 2),
            Conv2d("conv3", w[2], padding=1), lif("lif3", (c2, 16, 16), th[2]),
            Conv2d("conv4", w[3], padding=1), lif("lif4", (c2, 16, 16), th[3]), MaxPool2d("pool2", 2),
            Conv2d("conv5", w[4], padding=1), lif("lif5", (c3, 8, 8), th[4]), MaxPool2d("pool3", 2),
            Flatten("flat"), Linear("fc", fc), LI("out", (10,), beta=BETA)], T, encoding)
    return build, 5


def rates_of(ticket: Ticket, x: np.ndarray) -> dict[str, float]:
    res = cpu.run(ticket, x, backend="auto" if cpu.numba_available() else "numpy")
    batch = x.shape[1] if ticket.encoding.kind == "spikes" else x.shape[0]
    return {n.name: float(res.spike_counts[n.name].sum()) / (ticket.timesteps * batch * int(np.prod(n.shape)))
            for n in ticket.neuron_layers() if isinstance(n, LIF)}


def calibrate(build: Callable, n_layers: int, x: np.ndarray, rate: float) -> tuple[Ticket, dict[str, float]]:
    """Per hidden layer in order, bisect (geometrically) a scalar threshold until it fires at ``rate``."""
    th = [1.0] * n_layers
    for i in range(n_layers):
        lo, hi = 1e-3, 64.0
        for _ in range(10):
            th[i] = float(np.sqrt(lo * hi))
            r = list(rates_of(build(th), x).values())[i]
            lo, hi = (th[i], hi) if r > rate else (lo, th[i])
    ticket = build(th)
    return ticket, rates_of(ticket, x)


# ============================================================================ systems
class SnnTorchNet:
    """What users run today: nn.Linear / nn.Conv2d with the masked weights and ``snn.Leaky`` (zero reset)."""

    def __init__(self, ticket: Ticket) -> None:
        import snntorch as snn
        import torch
        from torch import nn

        from slt_deploy.ir import dense_weights

        self.torch, self.layers, self.T = torch, [], ticket.timesteps
        self.spikes_in = ticket.encoding.kind == "spikes"
        for name in ticket.order:
            node = ticket.node(name)
            if isinstance(node, (Linear, Conv2d)):
                w = torch.tensor(dense_weights(node.weights))
                mod = nn.Linear(w.shape[1], w.shape[0], bias=False) if isinstance(node, Linear) else \
                    nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], padding=node.padding, stride=node.stride, bias=False)
                with torch.no_grad():
                    mod.weight.copy_(w)
                self.layers.append(mod)
            elif isinstance(node, LIF):
                th = float(np.asarray(node.threshold).ravel()[0])
                self.layers.append(snn.Leaky(beta=BETA, threshold=th, reset_mechanism="zero"))
            elif isinstance(node, LI):
                self.layers.append(snn.Leaky(beta=BETA, threshold=1e30, reset_mechanism="none", output=True))
            elif isinstance(node, MaxPool2d):
                self.layers.append(nn.MaxPool2d(node.kernel_size))
            elif isinstance(node, Flatten):
                self.layers.append(nn.Flatten())

    def __call__(self, x: np.ndarray) -> Any:
        torch = self.torch
        with torch.no_grad():
            xt = torch.from_numpy(np.asarray(x, np.float32))
            mems = [layer.init_leaky() if hasattr(layer, "init_leaky") else None for layer in self.layers]
            outs = []
            for t in range(self.T):
                h = xt[t] if self.spikes_in else xt
                for i, layer in enumerate(self.layers):
                    if mems[i] is None:
                        h = layer(h)
                    else:
                        h, mems[i] = layer(h, mems[i])
                outs.append(mems[-1])
            return torch.stack(outs)


def make_systems(ticket: Ticket, which: list[str]) -> dict[str, dict[str, Callable[[np.ndarray], Any]]]:
    """name -> {"b1": run(x), "b64": run(x)}."""
    import torch
    from runtime import TorchNet
    from slt_deploy.targets import torch as torch_target
    from slt_deploy.targets.onnxruntime import compile_ticket

    from slt_deploy import reference

    threads = os.cpu_count() or 1
    out: dict[str, dict[str, Callable[[np.ndarray], Any]]] = {}

    def pinned(fn: Callable[[np.ndarray], Any], n: int) -> Callable[[np.ndarray], Any]:
        def run(x: np.ndarray) -> Any:
            if torch.get_num_threads() != n:
                torch.set_num_threads(n)
            return fn(x)
        return run

    for name in which:
        if name.startswith("slt cpu"):
            backend = "numba" if "numba" in name else "numpy"
            r1, rn = cpu.load(ticket, backend=backend, threads=1), cpu.load(ticket, backend=backend, threads=threads)
            out[name] = {"b1": r1.run, "b64": rn.run}
        elif name == "slt reference":
            out[name] = {"b1": lambda x: reference.simulate(ticket, x, record=False)} | {
                "b64": lambda x: reference.simulate(ticket, x, record=False)}
        elif name == "slt torch target":  # threads as the PyTorch loop: 1 at batch 1 (2 OpenMP workers on
            # 2 shared cores made one 1x1024 float64 product take 28 ms instead of 0.3 ms)
            fn = lambda x: torch_target.run(ticket, x, record=False)  # noqa: E731
            out[name] = {"b1": pinned(fn, 1), "b64": pinned(fn, threads)}
        elif name == "ONNX Runtime":
            p1, pn = compile_ticket(ticket, threads=1), compile_ticket(ticket, threads=threads)
            out[name] = {"b1": lambda x, p=p1: p.run(x, record=False), "b64": lambda x, p=pn: p.run(x, record=False)}
        elif name == "snnTorch":
            net = SnnTorchNet(ticket)
            out[name] = {"b1": pinned(net, 1), "b64": pinned(net, threads)}
        elif name == "PyTorch loop":
            loop = TorchNet(ticket)
            fn = loop if ticket.encoding.kind != "spikes" else (lambda x, n=loop: torch_loop_spikes(n, x))
            out[name] = {"b1": pinned(fn, 1), "b64": pinned(fn, threads)}
    return out


def torch_loop_spikes(net: Any, x: np.ndarray) -> Any:
    """The plain PyTorch dense loop of ``benchmarks/runtime.py`` fed one spike frame per step."""
    torch = net.torch
    F = torch.nn.functional
    with torch.no_grad():
        xt, mem, outs = torch.from_numpy(np.asarray(x, np.float32)), {}, []
        for t in range(net.T):
            h = xt[t]
            for i, (kind, w) in enumerate(net.layers):
                if kind == "linear":
                    h = F.linear(h, w)
                elif kind == "conv":
                    h = F.conv2d(h, w[0], padding=w[1])
                elif kind == "lif":
                    v = BETA * mem[i] + h if i in mem else h
                    s = (v > w).float()
                    mem[i], h = v * (1.0 - s), s
                elif kind == "li":
                    mem[i] = h = BETA * mem[i] + h if i in mem else h
                    outs.append(h)
                elif kind == "pool":
                    h = F.max_pool2d(h, w)
                elif kind == "flatten":
                    h = h.flatten(1)
        return torch.stack(outs)


SYSTEMS = ("slt cpu (numba)", "slt cpu (numpy)", "slt reference", "slt torch target", "ONNX Runtime", "snnTorch",
           "PyTorch loop")


def sums_per_run(ticket: Ticket, batch: int) -> int:
    """Synaptic sums one run computes (a static first layer once, every other layer every step)."""
    total, first = 0, True
    for name in ticket.order:
        node = ticket.node(name)
        if isinstance(node, (Linear, Conv2d)):
            steps = 1 if (first and ticket.encoding.kind == "direct") else ticket.timesteps
            total += steps * batch * int(np.prod(ticket.shapes[name]))
            first = False
    return total


def bench_row(network: str, kind: str, inp: str, batches: list[int], rate: float, systems: list[str],
              quick: bool) -> dict[str, Any]:
    from runtime import time_rounds

    rng = np.random.default_rng(0)
    grey = images(network, 256, rng)
    x = inputs(inp, grey, rng)
    spikes = inp.startswith("spikes")
    encoding = Encoding("spikes") if spikes else Encoding("direct")
    build, n_layers = builder(network, kind, encoding, np.random.default_rng(1))
    take = (lambda a, lo, hi: a[:, lo:hi]) if spikes else (lambda a, lo, hi: a[lo:hi])
    ticket, rates = calibrate(build, n_layers, take(x, 0, 16 if network == "vgg" else 64), rate)
    syst = make_systems(ticket, systems)
    row: dict[str, Any] = {"network": network, "weights": kind, "inputs": inp, "timesteps": T,
                           "hidden_spike_rates": rates, "systems": {k: {} for k in syst}}
    for b in batches:
        picks = [take(x, i, i + 1) for i in range(16)] if b == 1 else [take(x, 0, b)]
        def call(fn: Callable[[np.ndarray], Any], picks: list[np.ndarray] = picks) -> Callable[[], Any]:
            counter = {"i": 0}

            def run() -> Any:
                counter["i"] += 1
                return fn(picks[counter["i"] % len(picks)])
            return run

        key = "b1" if b == 1 else "b64"
        times = time_rounds({k: call(s[key]) for k, s in syst.items()}, 2 if quick else 4,
                            2 if quick else (8 if b == 1 else 2), 10 if quick else 60)
        for k, ts in times.items():
            med = float(np.median(ts))
            row["systems"][k][f"batch{b}"] = {"median_s": med, "us_per_sample": med * 1e6 / b,
                                              "samples_per_s": b / med, "repeats": len(ts)}
        main = "slt cpu (numba)" if "slt cpu (numba)" in syst else next(iter(syst))
        if main.startswith("slt"):
            res = syst[main][key](picks[0])
            slow = res.diagnostics.slow_path_sums or 0
            row[f"slow_path_batch{b}"] = {"sums": slow, "of": sums_per_run(ticket, b),
                                          "share": slow / max(1, sums_per_run(ticket, b))}
    row["ratios"] = ratios(row)
    return row


def ratios(row: dict[str, Any]) -> dict[str, float]:
    s, out = row["systems"], {}
    for b in ("batch1", "batch64"):
        cpu_row = s.get("slt cpu (numba)", s.get("slt cpu (numpy)", {})).get(b)
        for other in ("snnTorch", "PyTorch loop"):
            if cpu_row and b in s.get(other, {}):
                out[f"{b}: slt cpu / {other} (speed-up)"] = s[other][b]["median_s"] / cpu_row["median_s"]
        if "slt reference" in s and "PyTorch loop" in s and b in s["slt reference"]:
            out[f"{b}: slt reference time / PyTorch loop time"] = \
                s["slt reference"][b]["median_s"] / s["PyTorch loop"][b]["median_s"]
    return out


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [f"Command: `{command}`. Medians; 2 shared cores: noisy, read ratios not absolute times.", ""]
    systems = [k for k in SYSTEMS if any(k in r["systems"] for r in rows)]
    head = "| network | weights | inputs | hidden rates | batch | " + " | ".join(systems) + \
        " | cpu/snnTorch | cpu/PyTorch | ref/PyTorch | slow-path share |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        rates = "/".join(f"{v:.0%}" for v in r["hidden_spike_rates"].values())
        for b in ("batch1", "batch64"):
            if not any(b in v for v in r["systems"].values()):
                continue
            unit = (lambda m: f"{m['us_per_sample']:.0f} µs") if b == "batch1" else \
                (lambda m: f"{m['samples_per_s']:.0f}/s")
            cells = [unit(r["systems"][k][b]) if b in r["systems"].get(k, {}) else "-" for k in systems]
            rt = r["ratios"]
            ratio = [rt.get(f"{b}: slt cpu / snnTorch (speed-up)"), rt.get(f"{b}: slt cpu / PyTorch loop (speed-up)"),
                     rt.get(f"{b}: slt reference time / PyTorch loop time")]
            slow = r.get(f"slow_path_{b}", {})
            lines.append(f"| {r['network']} | {r['weights']} | {r['inputs']} | {rates} | {b[5:]} | " +
                         " | ".join(cells) + " | " + " | ".join("-" if v is None else f"{v:.1f}x" for v in ratio) +
                         f" | {slow.get('sums', '-')} of {slow.get('of', '-')} |")
    return "\n".join(lines) + "\n"


def run_matrix(networks: list[str], weights: list[str], inputs_: list[str], batches: list[int], rate: float,
               systems: list[str], quick: bool, log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for network in networks:
        for kind in weights:
            for inp in inputs_:
                t0 = time.perf_counter()
                rows.append(bench_row(network, kind, inp, batches, rate, systems, quick))
                log(f"[matrix] {network} {kind} {inp}: {time.perf_counter() - t0:.0f} s")
    return rows
