"""Conv nets on step-packed spikes (targets/cpu/packed_chain.py, numba_packed.py) equal the reference.

The packed chain runs ``binary conv -> LIF`` in one kernel over step masks (one byte per
neuron, bit t = step t) and max pools as a bytewise OR. Oracle: the reference simulator, bit
for bit on the output and spike for spike on every LIF layer's per-step counts, over every
LIF variant (charge x reset, neuron bias), conv bias and scale, T across the 8-step groups
(1, 3, 8, 11, 16), batch 1 and several samples, analog and spike inputs, binary weights
(byte lanes) and int8 / float32 codes (float64 sums step by step).
"""

from __future__ import annotations

import numpy as np
import pytest
from slt_deploy.targets import cpu

from slt_deploy import reference
from slt_deploy.ir import (
    LI,
    LIF,
    BinaryWeights,
    Conv2d,
    Encoding,
    Flatten,
    FloatWeights,
    Int8Weights,
    Linear,
    MaxPool2d,
    Ticket,
    sequential,
)
from slt_deploy.ir.neurons import CHARGES, RESETS

pytestmark = pytest.mark.skipif(not cpu.numba_available(), reason="the packed chain is a numba-backend path")


def _binary(rng: np.random.Generator, shape: tuple[int, ...], p: float, scale=None, kind: str = "binary"):
    """Binary (default), int8 or float32 weights of density ``p`` and unit-ish fan-in gain."""
    mask = rng.random(shape) < p
    fan = max(p * float(np.prod(shape[1:])), 1.0)
    if kind == "int8":
        q = (rng.integers(-127, 128, shape) * mask).astype(np.int8)
        return Int8Weights(q != 0, q, np.float32(2.5 / (64 * np.sqrt(fan))))
    if kind == "float32":
        vals = (rng.normal(0, 1.5 / np.sqrt(fan), shape) * mask).astype(np.float32)
        return FloatWeights(vals != 0, vals)
    return BinaryWeights(mask, rng.random(shape) < 0.5, np.float32(1.5 / np.sqrt(fan)) if scale is None else scale)


def _net(rng: np.random.Generator, T: int, encoding: Encoding, charge: str = "leaky", reset: str = "zero",
         neuron_bias: bool = False, conv_bias: bool = False, scale=None, c: int = 8, kind: str = "binary") -> Ticket:
    def lif(name: str, shape: tuple[int, ...]) -> LIF:
        n = int(np.prod(shape))
        extra = {}
        beta = rng.uniform(0.7, 0.95, shape).astype(np.float32)
        if charge != "leaky":  # tau forms decay by tau, beta stays 1
            extra["tau"], beta = rng.uniform(1.5, 4.0, shape).astype(np.float32), np.float32(1.0)
        return LIF(name, shape=shape, beta=beta,
                   threshold=rng.uniform(0.3, 0.8, shape).astype(np.float32), reset=reset, charge=charge,
                   bias=rng.normal(0, 0.1, n).astype(np.float32).reshape(shape) if neuron_bias else None, **extra)

    def cb(o: int):
        return rng.normal(0, 0.2, o).astype(np.float32) if conv_bias else None

    return sequential((2, 10, 10), [
        Conv2d("conv1", _binary(rng, (c, 2, 3, 3), 0.6), padding=1, bias=cb(c)), lif("lif1", (c, 10, 10)),
        Conv2d("conv2", _binary(rng, (c, c, 3, 3), 0.3, scale, kind), padding=1, bias=cb(c)), lif("lif2", (c, 10, 10)),
        MaxPool2d("pool", 2),
        Conv2d("conv3", _binary(rng, (c, c, 3, 3), 0.4, scale, kind), bias=cb(c)), lif("lif3", (c, 3, 3)),
        Flatten("flat"), Linear("fc", _binary(rng, (4, c * 9), 0.5)), LI("out", (4,), beta=0.9)], T, encoding)


def _inputs(encoding: Encoding, T: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if encoding.kind == "spikes":
        return (rng.random((T, n, 2, 10, 10)) < 0.3).astype(np.float32)
    return rng.normal(0, 1, (n, 2, 10, 10)).astype(np.float32)  # standardized features


class _Spy:
    """Counts the runs that went through :meth:`PackedChain.run`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from slt_deploy.targets.cpu import packed_chain

        self.runs = 0
        real = packed_chain.PackedChain.run

        def run(chain, x, binary):
            self.runs += 1
            return real(chain, x, binary)
        monkeypatch.setattr(packed_chain.PackedChain, "run", run)


def _check(monkeypatch, ticket: Ticket, x: np.ndarray, batch: int, spikes: bool, threads: int = 1) -> None:
    spy = _Spy(monkeypatch)
    rt = cpu.load(ticket, backend="numba", threads=threads, kernel="event")
    take = (lambda lo: x[:, lo:lo + batch]) if spikes else (lambda lo: x[lo:lo + batch])
    n = x.shape[1] if spikes else x.shape[0]
    rt.run(take(0))  # the first run (graph executor) fixes the kernels
    for lo in range(0, n, batch):
        xb = take(lo)
        got, ref = rt.run(xb), reference.simulate(ticket, xb)
        np.testing.assert_array_equal(np.asarray(got.output, np.float32).view(np.uint32),
                                      np.asarray(ref.output, np.float32).view(np.uint32))
        for name, counts in ref.spike_counts.items():
            np.testing.assert_array_equal(got.spike_counts[name], counts, err_msg=name)
        assert got.diagnostics.slow_path_sums == 0
    assert spy.runs >= len(range(0, n, batch)), "the runs did not take the packed chain"


@pytest.mark.parametrize("charge", CHARGES)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["binary", "int8", "float32"])
def test_every_lif_variant(monkeypatch, charge: str, reset: str, kind: str) -> None:
    rng = np.random.default_rng(CHARGES.index(charge) * 10 + RESETS.index(reset))
    ticket = _net(rng, 11, Encoding("direct"), charge, reset, neuron_bias=reset != "none", conv_bias=charge == "leaky",
                  kind=kind)
    _check(monkeypatch, ticket, _inputs(ticket.encoding, 11, 6, rng), 3, False)


@pytest.mark.parametrize("T", [1, 3, 8, 16])
@pytest.mark.parametrize("encoding", ["direct", "spikes"])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("kind", ["binary", "float32"])
def test_step_groups_inputs_and_batches(monkeypatch, T: int, encoding: str, batch: int, kind: str) -> None:
    rng = np.random.default_rng(T * 10 + batch)
    enc = Encoding(encoding)
    ticket = _net(rng, T, enc, "leaky", "subtract", conv_bias=True, kind=kind)
    _check(monkeypatch, ticket, _inputs(enc, T, 10, rng), batch, encoding == "spikes")


def test_batch_split_over_threads(monkeypatch) -> None:
    """Two worker threads, each running the packed chain on its part of the batch."""
    rng = np.random.default_rng(5)
    ticket = _net(rng, 8, Encoding("direct"), "leaky", "zero", kind="float32")
    _check(monkeypatch, ticket, _inputs(ticket.encoding, 8, 12, rng), 6, False, threads=2)


@pytest.mark.parametrize("scale", ["per-channel", "negative"])
def test_per_channel_and_negative_scales(monkeypatch, scale: str) -> None:
    rng = np.random.default_rng(7)
    s = rng.uniform(0.2, 0.6, (8, 1, 1, 1)).astype(np.float32)
    if scale == "negative":
        s[::2] *= -1  # float32(0)·(−α) is −0.0: the packed path must keep the sign of zero
    ticket = _net(rng, 8, Encoding("direct"), scale=s)
    _check(monkeypatch, ticket, _inputs(ticket.encoding, 8, 4, rng), 2, False)


def test_default_kernel_choice_takes_the_packed_chain(monkeypatch) -> None:
    """Sparse wide convs: the cost model itself picks the event scatter, so the chain engages unforced."""
    rng = np.random.default_rng(11)
    w1, w2 = _binary(rng, (32, 3, 3, 3), 0.3), _binary(rng, (32, 32, 3, 3), 0.05)
    ticket = sequential((3, 16, 16), [
        Conv2d("conv1", w1, padding=1), LIF("lif1", (32, 16, 16), beta=0.9, threshold=0.5),
        Conv2d("conv2", w2, padding=1), LIF("lif2", (32, 16, 16), beta=0.9, threshold=0.3), MaxPool2d("pool", 2),
        Flatten("flat"), Linear("fc", _binary(rng, (10, 32 * 64), 0.03)), LI("out", (10,), beta=0.9)],
        8, Encoding("direct"))
    x = rng.normal(0, 1, (4, 3, 16, 16)).astype(np.float32)
    spy = _Spy(monkeypatch)
    rt = cpu.load(ticket, backend="numba", threads=1)
    rt.run(x[:1])
    assert rt.kernels_used()["conv2"] == "event"
    for i in range(4):
        got, ref = rt.run(x[i:i + 1]), reference.simulate(ticket, x[i:i + 1])
        np.testing.assert_array_equal(got.output, ref.output)
        for name, counts in ref.spike_counts.items():
            np.testing.assert_array_equal(got.spike_counts[name], counts)
    assert spy.runs == 4


def test_slow_path_sums_of_the_first_conv_are_reported(monkeypatch) -> None:
    """A packed chain whose first conv (analog input, generic checked kernel) meets exact midpoints.

    Each window holding 1.0, 2^-24 and 2^-80 under unit weights sums to just above 1 + 2^-24,
    the midpoint between two float32 values: the float64 sum lands on the midpoint, no error
    bound can decide it and the terms span too many bits for the grid certificate, so it takes
    the exact slow path. The fused run must report those sums, not 0.
    """
    from slt_deploy import exact

    rng = np.random.default_rng(3)
    ones = np.ones((4, 2, 3, 3), np.float32)
    ticket = sequential((2, 10, 10), [
        Conv2d("conv1", FloatWeights(ones != 0, ones), padding=1), LIF("lif1", (4, 10, 10), beta=0.9, threshold=0.5),
        Conv2d("conv2", _binary(rng, (4, 4, 3, 3), 0.4), padding=1), LIF("lif2", (4, 10, 10), beta=0.9, threshold=0.3),
        Flatten("flat"), Linear("fc", _binary(rng, (3, 400), 0.2)), LI("out", (3,), beta=0.9)],
        4, Encoding("direct"))
    x = np.zeros((1, 2, 10, 10), np.float32)
    x[0, 0, 5, 5], x[0, 0, 5, 6], x[0, 0, 5, 7] = 1.0, 2.0 ** -24, 2.0 ** -80
    spy = _Spy(monkeypatch)
    rt = cpu.load(ticket, backend="numba", threads=1, kernel="event")
    rt.run(x)  # the first run (graph executor) fixes the kernels
    before = exact.fallback_count()
    got = rt.run(x)
    assert spy.runs == 1, "the run did not take the packed chain"
    assert got.diagnostics.slow_path_sums == exact.fallback_count() - before > 0
    ref = reference.simulate(ticket, x)
    np.testing.assert_array_equal(got.output, ref.output)
    for name, counts in ref.spike_counts.items():
        np.testing.assert_array_equal(got.spike_counts[name], counts, err_msg=name)
