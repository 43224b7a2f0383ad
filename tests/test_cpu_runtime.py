"""The bit-packed CPU runtime (slt_deploy.targets.cpu) against the reference simulator.

Oracle: the reference simulator in float32. Outputs (spikes or LI membranes), per-layer
spike counts and, with ``record=True``, every node's per-step output must be *equal*, for
random tickets of every family, weight kind, density, neuron variant and encoding, with
both backends and every forced kernel.

Synaptic sums are exact and rounded once (docs/semantics.md), in the reference and the
runtime alike; ``test_sum_is_exact_then_rounded_once`` shows a sum (a 1e-40 weight next to
1.0 on a float32 midpoint) where plain float64 accumulation would round differently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slt_deploy.targets import cpu
from strategies import ticket_and_input, tickets

from slt_deploy import reference
from slt_deploy.errors import SltFormatError, SltInputError, SltUnsupportedError
from slt_deploy.ir import (
    LI,
    LIF,
    Add,
    BinaryWeights,
    Conv2d,
    Encoding,
    Flatten,
    FloatWeights,
    Input,
    Int8Weights,
    Linear,
    MaxPool2d,
    Output,
    Ticket,
    sequential,
)
from slt_deploy.ir.graph import Edge

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["numpy"] + (["numba"] if cpu.numba_available() else [])
KERNELS = [None, "popcount", "event", "gather"]
PROPERTY = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- oracle
def _midpoint_ticket() -> Ticket:
    """1 + 2^-24 is a float32 midpoint; the 1e-40 term makes the exact sum round up."""
    w = np.array([[1.0, 2.0**-24, 1e-40]], np.float32)
    return sequential((3,), [Linear("fc", FloatWeights(w != 0, w)), LI("ro", (1,), beta=1.0)], 1, Encoding("spikes"))


def simulate(ticket: Ticket, x: np.ndarray):
    return reference.simulate(ticket, x)


def assert_same(got, ref, layers: bool = False) -> None:
    assert got.target == "cpu"
    assert got.output.dtype == np.float32 and got.output.shape == ref.output.shape
    np.testing.assert_array_equal(got.output, ref.output)
    assert got.spiking == ref.spiking
    assert got.spike_counts.keys() == ref.spike_counts.keys()
    for name, counts in ref.spike_counts.items():
        np.testing.assert_array_equal(got.spike_counts[name], counts, err_msg=name)
        assert got.spike_counts[name].dtype == np.int64
    if layers:
        assert got.layers.keys() == ref.layers.keys()
        for name, value in ref.layers.items():
            np.testing.assert_array_equal(got.layers[name], value, err_msg=name)


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", KERNELS)
@PROPERTY
@given(data=ticket_and_input())
def test_random_tickets_spike_exact(backend: str, kernel: str | None, data) -> None:
    ticket, x = data
    rt = cpu.load(ticket, backend=backend, kernel=kernel, threads=1)
    ref = simulate(ticket, x)
    assert_same(rt.run(x, record=True), ref, layers=True)  # graph executor, every node recorded
    assert_same(rt.run(x), ref)  # kernels fixed: fused chain where the graph allows (numba)


@pytest.mark.parametrize("backend", BACKENDS)
@PROPERTY
@given(data=ticket_and_input(families=("recurrent", "residual")), threads=st.integers(2, 3))
def test_threads_split_the_batch_exactly(backend: str, data, threads: int) -> None:
    ticket, x = data
    x = np.concatenate([x] * 3, axis=1 if ticket.encoding.kind == "spikes" else 0)  # batch >= 3
    got = cpu.run(ticket, x, backend=backend, threads=threads)
    assert_same(got, simulate(ticket, x))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux-only")
def test_workers_are_pinned_one_per_cpu_when_the_pool_uses_every_cpu(monkeypatch) -> None:
    import threading

    from slt_deploy.targets.cpu import workers

    cpus = sorted(os.sched_getaffinity(0))
    assert workers.worker_cpus(max(1, len(cpus) - 1)) is None  # fewer threads than CPUs: the OS places them
    monkeypatch.setenv("SLT_PIN_THREADS", "0")
    assert workers.worker_cpus(len(cpus)) is None
    monkeypatch.delenv("SLT_PIN_THREADS")
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to pin")
    assert workers.worker_cpus(len(cpus)) == cpus
    ticket = _small_ticket()
    x = np.random.default_rng(0).uniform(-1, 1, (8, 3)).astype(np.float32)
    rt = cpu.load(ticket, backend="numpy", threads=len(cpus))
    assert_same(rt.run(x), simulate(ticket, x))
    barrier = threading.Barrier(len(cpus))  # every worker runs one task at once: each reports its own CPU set

    def affinity() -> tuple[int, ...]:
        barrier.wait(timeout=30)
        return tuple(sorted(os.sched_getaffinity(0)))
    pool = rt._executor()
    seen = sorted(f.result() for f in [pool.submit(affinity) for _ in cpus])
    assert seen == [(c,) for c in cpus]
    assert set(os.sched_getaffinity(0)) == set(cpus)  # the calling thread keeps every CPU
    rt.close()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticket=tickets(families=("mlp", "conv"), kinds=("binary",), encodings=("direct",)),
       seed=st.integers(0, 2**32 - 1))
def test_static_analog_input_with_extreme_exponents(backend: str, ticket: Ticket, seed: int) -> None:
    """Direct input is computed once; tiny and huge values force the exact fallback."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (2, *ticket.input_shape)).astype(np.float32)
    x.reshape(-1)[rng.random(x.size) < 0.3] = np.float32(1e-30)
    x.reshape(-1)[0] = np.float32(3e4)
    assert_same(cpu.run(ticket, x, backend=backend, threads=1), simulate(ticket, x))


# ----------------------------------------------------------------------------- hand-worked
@pytest.mark.parametrize("backend", BACKENDS)
def test_sum_is_exact_then_rounded_once(backend: str) -> None:
    # Σ = 1 + 2^-24 + 1e-40 lies just above the float32 midpoint between 1 and 1 + 2^-23,
    # so rounding once gives 1 + 2^-23. (float64 accumulation drops the 1e-40 term, lands
    # on the midpoint and rounds to even: 1.0.)
    out = cpu.run(_midpoint_ticket(), np.ones((1, 1, 3), np.float32), backend=backend).output
    assert float(out.ravel()[0]) == float(np.float32(1 + 2.0**-23))


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_popcount_hand_worked(backend: str) -> None:
    # Weights (α = 0.5): row 0 = [+1, −1, 0, +1], row 1 = [−1, −1, −1, −1]; spikes x = [1, 1, 0, 1]
    # n = [1 − 1 + 1, −3] = [1, −3]; I = n·0.5 = [0.5, −1.5]; IF θ = 0.25, one step:
    # neuron 0 fires (0.5 > 0.25), neuron 1 does not.
    mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    neg = np.array([[0, 1, 0, 0], [1, 1, 1, 1]], bool)
    t = sequential((4,), [Linear("fc", BinaryWeights(mask, neg, 0.5)), LIF("n", (2,), threshold=0.25)], 1,
                   Encoding("spikes"))
    x = np.array([[[1, 1, 0, 1]]], np.float32)
    for kernel in KERNELS:
        res = cpu.run(t, x, backend=backend, kernel=kernel)
        np.testing.assert_array_equal(res.output, [[[1, 0]]])
        np.testing.assert_array_equal(res.spike_counts["n"], [1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_larger_layers_cross_word_boundaries(backend: str) -> None:
    """200 inputs (4 words, a partial last one), 130 outputs, all densities, all kernels,
    spike input (rate code) and analog input (direct, batch 2 and 5)."""
    rng = np.random.default_rng(7)
    for p in (0.01, 0.1, 0.5, 1.0):
        mask = rng.random((130, 200)) < p
        w = BinaryWeights(mask, rng.random((130, 200)) < 0.5, rng.uniform(0.01, 0.05, 130).astype(np.float32))
        for encoding, batch in ((Encoding("rate", seed=3), 5), (Encoding("direct"), 2), (Encoding("direct"), 5)):
            t = sequential((200,), [Linear("fc", w), LIF("n", (130,), beta=0.9, threshold=0.05, reset="subtract")],
                           6, encoding)
            x = rng.random((batch, 200)).astype(np.float32)
            ref = simulate(t, x)
            for kernel in KERNELS:
                assert_same(cpu.run(t, x, backend=backend, kernel=kernel, threads=1), ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_recurrent_int8_with_delayed_reset(backend: str) -> None:
    """in -> fin -> add <- rec <-(recurrent) n, add -> n: a step-major block with int8 weights."""
    rng = np.random.default_rng(1)

    def int8(shape):
        return Int8Weights(rng.random(shape) < 0.6, rng.integers(-128, 128, shape).astype(np.int8), 0.004)

    nodes = (Input("in", shape=(5,)), Linear("fin", int8((6, 5))), Linear("rec", int8((6, 6))), Add("add"),
             LIF("n", shape=(6,), beta=0.8, threshold=0.3, bias=0.2, reset="subtract_delayed"), Output("out"))
    edges = (Edge("in", "fin"), Edge("fin", "add"), Edge("rec", "add"), Edge("add", "n"),
             Edge("n", "rec", recurrent=True), Edge("n", "out"))
    t = Ticket(nodes, edges, 7, Encoding("direct"))
    x = rng.random((3, 5)).astype(np.float32)
    for kernel in KERNELS:
        assert_same(cpu.run(t, x, backend=backend, kernel=kernel, threads=1), simulate(t, x), layers=False)


@pytest.mark.skipif("numba" not in BACKENDS, reason="the fused chain is a numba-backend path")
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("encoding", [Encoding("direct"), Encoding("rate", seed=4), Encoding("spikes")])
def test_fused_chain_is_used_and_exact(kernel: str | None, encoding: Encoding) -> None:
    """Feed-forward chains run in one compiled call from the second batch on; same results."""
    rng = np.random.default_rng(2)

    def binary(shape, p):
        return BinaryWeights(rng.random(shape) < p, rng.random(shape) < 0.5, rng.uniform(0.1, 0.3, shape[0]))

    q = Int8Weights(rng.random((20, 40)) < 0.3, rng.integers(-128, 128, (20, 40)).astype(np.int8), 0.01)
    for last in (LI("ro", (7,), beta=0.8, bias=0.1), LIF("ro", (7,), beta=0.8, threshold=0.2, reset="subtract")):
        t = sequential((30,), [Linear("a", binary((40, 30), 0.4), bias=rng.uniform(-0.1, 0.1, 40)),
                               LIF("n1", (40,), beta=0.9, threshold=0.3), Linear("b", q),
                               LIF("n2", (20,), threshold=0.1, charge="decay_input", tau=2.0, reset="subtract_delayed"),
                               Linear("c", binary((7, 20), 1.0)), last], 6, encoding)
        shape = (6, 5, 30) if encoding.kind == "spikes" else (5, 30)
        x = (rng.random(shape) < 0.4).astype(np.float32) if encoding.kind == "spikes" else rng.random(shape)
        rt = cpu.load(t, backend="numba", kernel=kernel, threads=2)
        ref = simulate(t, x)
        assert_same(rt.run(x), ref)
        assert_same(rt.run(x), ref)
        assert any(c is not None for c in rt._chains.values()), "the chain program was not built"
        # an input the certificate does not cover falls back to the graph executor, still exact
        if encoding.kind == "direct":
            x2 = x.copy()
            x2[0, 0] = 1e-30
            assert_same(rt.run(x2), simulate(t, x2))


# ----------------------------------------------------------------------------- .slt files
@pytest.mark.parametrize("backend", BACKENDS)
def test_run_from_slt_file_maps_bit_planes(tmp_path: Path, backend: str) -> None:
    import slt_deploy

    rng = np.random.default_rng(3)
    dense = BinaryWeights(np.ones((64, 100), bool), rng.random((64, 100)) < 0.5, 0.1)  # stored dense-signs
    half = BinaryWeights(rng.random((10, 64)) < 0.6, rng.random((10, 64)) < 0.5, 0.2)  # stored bitmask
    t = sequential((100,), [Linear("fc1", dense), LIF("n1", (64,), threshold=0.3), Linear("fc2", half),
                           LI("ro", (10,), beta=0.9)], 5, Encoding("rate", seed=1))
    path = tmp_path / "t.slt"
    slt_deploy.save(t, path)
    x = rng.random((4, 100)).astype(np.float32)
    rt = cpu.load(path, backend=backend, kernel="popcount")
    assert_same(rt.run(x), simulate(t, x))
    planes = [op.stores["planes"] for op in rt.ops.values() if getattr(op, "stores", None)]
    assert len(planes) == 2 and all(p.mapped for p in planes)
    assert isinstance(planes[0].neg, np.memmap) and planes[0].mask is None  # dense-signs: neg is the file's tensor
    assert isinstance(planes[1].mask, np.memmap)  # bitmask: mask is the file's tensor
    assert_same(cpu.run(str(path), x, backend=backend), simulate(t, x))


def test_corrupt_slt_is_one_line_format_error(tmp_path: Path) -> None:
    import slt_deploy

    t = sequential((4,), [Linear("fc", BinaryWeights(np.ones((2, 4), bool), np.zeros((2, 4), bool), 1.0)),
                          LIF("n", (2,))], 2)
    path = tmp_path / "t.slt"
    slt_deploy.save(t, path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    bad = tmp_path / "bad.slt"
    bad.write_bytes(bytes(data))
    for target in (bad, tmp_path / "missing.slt", tmp_path):
        with pytest.raises(SltFormatError) as info:
            cpu.run(target, np.zeros((1, 4), np.float32))
        assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- bad input
def _small_ticket(encoding: Encoding = Encoding()) -> Ticket:
    w = BinaryWeights(np.ones((2, 3), bool), np.zeros((2, 3), bool), 0.5)
    return sequential((3,), [Linear("fc", w), LIF("n", (2,))], 4, encoding)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x, encoding, what", [
    (np.zeros((2, 4), np.float32), Encoding(), "shape"),
    (np.zeros((3,), np.float32), Encoding(), "shape"),
    (np.array([["a", "b", "c"]]), Encoding(), "dtype"),
    (np.zeros((1, 3), np.complex64), Encoding(), "complex"),
    (np.array([[0.0, np.nan, 1.0]]), Encoding(), "NaN"),
    (np.array([[0.0, np.inf, 1.0]]), Encoding(), "NaN or inf"),
    (np.zeros((3, 1, 3), np.float32), Encoding("spikes"), "T=4"),
    (np.full((1, 3), 2.0), Encoding("rate", seed=0), "[0, 1]"),
    (np.zeros((0, 3), np.float32), Encoding(), "empty"),
])
def test_bad_input_is_one_line_input_error(backend: str, x: np.ndarray, encoding: Encoding, what: str) -> None:
    with pytest.raises(SltInputError) as info:
        cpu.run(_small_ticket(encoding), x, backend=backend)
    assert what in str(info.value) and "\n" not in str(info.value)


def test_bad_options_are_typed_errors() -> None:
    t = _small_ticket()
    with pytest.raises(SltInputError):
        cpu.load(t, backend="cuda")
    with pytest.raises(SltInputError):
        cpu.load(t, kernel="dense")
    with pytest.raises(SltInputError):
        cpu.load(t, threads=0)
    with pytest.raises(SltInputError):
        cpu.load(42)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- numpy only
def test_numpy_backend_runs_without_torch_or_numba(tmp_path: Path) -> None:
    """The runtime imports and runs with numpy + safetensors only (torch, numba blocked)."""
    script = textwrap.dedent("""
        import sys, importlib.abc
        BLOCKED = ("torch", "numba", "llvmlite", "scipy", "onnx", "onnxruntime", "lava")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked in this test")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import slt_deploy
        from slt_deploy.errors import SltUnsupportedError
        from slt_deploy.ir import BinaryWeights, Encoding, LIF, LI, Linear, sequential
        from slt_deploy.targets import cpu
        rng = np.random.default_rng(0)
        w1 = BinaryWeights(rng.random((16, 8)) < 0.3, rng.random((16, 8)) < 0.5, 0.4)
        w2 = BinaryWeights(rng.random((3, 16)) < 0.5, rng.random((3, 16)) < 0.5, 0.2)
        t = sequential((8,), [Linear("a", w1), LIF("n", (16,), threshold=0.2), Linear("b", w2), LI("r", (3,))], 5,
                       Encoding("rate", seed=2))
        slt_deploy.save(t, sys.argv[1])
        x = rng.random((2, 8))
        res = cpu.run(sys.argv[1], x)
        ref = slt_deploy.run(t, x)
        assert np.array_equal(res.output, ref.output), "mismatch"
        assert cpu.load(t).backend == "numpy"
        try:
            cpu.load(t, backend="numba")
        except SltUnsupportedError:
            pass
        else:
            raise SystemExit("backend='numba' should fail without numba")
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules)
        print("OK", res.spike_counts["n"].sum())
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "t.slt")], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK")


# ----------------------------------------------------------------------------- larger nets
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_benchmark_shaped_networks(backend: str) -> None:
    """The benchmark's MLP (scaled down) and a VGG-style conv net, binary, all kernels."""
    rng = np.random.default_rng(11)

    def binary(shape, p):
        fan_in = int(np.prod(shape[1:]))
        return BinaryWeights(rng.random(shape) < p, rng.random(shape) < 0.5, 2.0 / np.sqrt(p * fan_in))

    mlp = sequential((196,), [Linear("fc1", binary((256, 196), 0.1)), LIF("l1", (256,), beta=0.9),
                              Linear("fc2", binary((256, 256), 0.03)), LIF("l2", (256,), beta=0.9),
                              Linear("fc3", binary((10, 256), 0.1)), LI("ro", (10,), beta=0.9)], 8)
    conv = sequential((3, 16, 16), [
        Conv2d("c1", binary((16, 3, 3, 3), 0.3), padding=1), LIF("l1", (16, 16, 16), beta=0.9),
        Conv2d("c2", binary((16, 16, 3, 3), 0.1), padding=1), LIF("l2", (16, 16, 16), beta=0.9),
        MaxPool2d("p", 2), Conv2d("c3", binary((32, 8, 3, 3), 0.1), padding=1, groups=2),
        LIF("l3", (32, 8, 8), beta=0.9), Flatten("f"), Linear("fc", binary((10, 2048), 0.05)),
        LI("ro", (10,), beta=0.9)], 4)
    for ticket in (mlp, conv):
        x = rng.random((5, *ticket.input_shape)).astype(np.float32)
        ref = simulate(ticket, x)
        assert sum(c.sum() for c in ref.spike_counts.values()) > 0
        for kernel in KERNELS:
            assert_same(cpu.run(ticket, x, backend=backend, kernel=kernel, threads=2), ref)


def test_backend_unavailable_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    from slt_deploy.targets.cpu import runtime

    monkeypatch.setattr(runtime, "numba_available", lambda: False)
    with pytest.raises(SltUnsupportedError):
        runtime.kernels_for("numba")
    assert runtime.kernels_for("auto")[0] == "numpy"
