"""The conformance suite: every registered target, spike for spike and node for node.

Parametrised over the registry (:mod:`slt_deploy.registry`), so a target gets these tests by
being registered, with no new test code:

- every ``float32-exact`` target equals the float32 reference on random tickets of every family
  (MLP, conv with pools, residual joins, recurrent edges, spiking outputs seen through
  MaxPool/Flatten), every weight kind and encoding, with biases: output, spike counts and every
  node's per-step values, bit for bit;
- every ``fixed-point`` target equals the fixed-point reference (Loihi's integers) likewise;
- a target whose sums accumulate in float64 in its own order (``exact_sums=False``) is held to
  the same standard except on the rare sums the reference itself had to take its exact slow
  path for (:func:`slt_deploy.exact.fallback_count`), which such a target cannot round the same.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from strategies import ticket_and_input

import slt_deploy as slt
from slt_deploy import exact, registry
from slt_deploy.ir import LIF, BinaryWeights, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, sequential
from slt_deploy.reference import simulate

TOKEN_KINDS = ["reshape", "transpose", "select", "matmul", "mul", "reduce"]

FLOAT_TARGETS = [t for t in registry.exact_targets(registry.Arithmetic.FLOAT32_EXACT) if t != "reference"]
FIXED_TARGETS = [t for t in registry.exact_targets(registry.Arithmetic.FIXED_POINT) if t != "fixed-reference"]


def _spec(name: str) -> registry.TargetSpec:
    spec = registry.target(name)
    if not spec.available():
        pytest.skip(spec.missing_message())
    return spec


def assert_identical(expected: slt.Result, got: slt.Result, ticket: slt.Ticket) -> None:
    """Output, spiking flag, spike counts and every node's recorded values equal bit for bit."""
    assert got.output.shape == expected.output.shape
    np.testing.assert_array_equal(got.output, expected.output)
    assert got.spiking == expected.spiking == ticket.output_is_spiking
    assert (got.spikes is None) == (expected.spikes is None)
    assert set(got.spike_counts) == set(expected.spike_counts)
    for name, counts in expected.spike_counts.items():
        np.testing.assert_array_equal(got.spike_counts[name], counts, err_msg=name)
    missing = set(expected.layers) - set(got.layers)
    assert not missing, f"{got.target} did not record nodes {sorted(missing)} when asked"
    for name, values in expected.layers.items():
        np.testing.assert_array_equal(got.layers[name], values, err_msg=f"node {name} ({ticket.node(name).kind})")


@pytest.mark.parametrize("target", FLOAT_TARGETS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(case=ticket_and_input())
def test_float32_targets_equal_the_reference(target: str, case) -> None:
    spec = _spec(target)
    ticket, x = case
    before = exact.fallback_count()
    expected = simulate(ticket, x, record=True)
    slow_path = exact.fallback_count() != before
    try:
        got = slt.run(ticket, x, target=target, record=True)
        assert_identical(expected, got, ticket)
    except AssertionError:
        if slow_path and not spec.exact_sums:
            reject()  # a sum float64 cannot hold exactly: documented for float64-accumulating targets
        raise


@pytest.mark.parametrize("target", FLOAT_TARGETS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(case=ticket_and_input(families=("attention",)))
def test_float32_targets_run_spiking_attention_like_the_reference(target: str, case) -> None:
    # Spikformer SSA / spike-driven SDSA blocks (1-2 heads, token masks, residual, mean head),
    # every token kind: spike x spike products are integer counts, so every target must be exact.
    spec = _spec(target)
    table = registry._resolve(spec.handlers)
    refused = sorted(kind for kind in TOKEN_KINDS if not table.handles(kind))
    if refused:
        pytest.skip(f"{target} refuses {', '.join(refused)} (by name)")
    ticket, x = case
    before = exact.fallback_count()
    expected = simulate(ticket, x, record=True)
    slow_path = exact.fallback_count() != before
    try:
        assert_identical(expected, slt.run(ticket, x, target=target, record=True), ticket)
    except AssertionError:
        if slow_path and not spec.exact_sums:
            reject()
        raise


@pytest.mark.parametrize("target", FIXED_TARGETS)
@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(case=ticket_and_input(families=("mlp", "recurrent", "rlif", "spiking-tail"), kinds=("binary", "int8"),
                             encodings=("spikes",), max_timesteps=3))
def test_fixed_point_targets_equal_the_fixed_reference(target: str, case) -> None:
    _spec(target)
    ticket, x = case
    try:
        expected = slt.run(ticket, x, target="fixed-reference", record=True)
    except slt.SltUnsupportedError:
        reject()  # outside what Loihi can run (the refusal names the node; tested elsewhere)
    got = slt.run(ticket, x, target=target, record=True)
    np.testing.assert_array_equal(got.output, expected.output)
    for name, counts in expected.spike_counts.items():
        np.testing.assert_array_equal(got.spike_counts[name], counts, err_msg=name)


@pytest.mark.parametrize("target", ["reference", *FLOAT_TARGETS])
@pytest.mark.parametrize("tail", ["flatten", "maxpool+flatten"])
def test_spikes_seen_through_flatten_or_maxpool_are_spikes_on_every_target(target: str, tail: str) -> None:
    # Regression: the cpu target once decided "spiking output" by looking at the Output's
    # direct source only, so Linear->LIF->Flatten->Output returned spikes=None there.
    _spec(target)
    rng = np.random.default_rng(5)
    w = BinaryWeights(rng.random((3, 1, 3, 3)) < 0.6, rng.random((3, 1, 3, 3)) < 0.4, np.float32(0.5))
    layers = [Conv2d("conv", w, padding=1), LIF("lif", shape=(3, 4, 4), threshold=0.4)]
    if tail.startswith("maxpool"):
        layers.append(MaxPool2d("pool", kernel_size=2))
    layers.append(Flatten("flat"))
    ticket = sequential((1, 4, 4), layers, 5)
    x = rng.random((4, 1, 4, 4)).astype(np.float32)
    result = slt.run(ticket, x, target=target)
    assert result.spiking and result.spikes is not None
    np.testing.assert_array_equal(result.spikes, simulate(ticket, x).output)


def test_every_float32_target_is_in_the_suite() -> None:
    # the suite's parameters come from the registry: nothing to add by hand for a new target
    declared = {n for n, s in registry.TARGETS.items() if s.arithmetic is registry.Arithmetic.FLOAT32_EXACT}
    assert declared == {"reference", *FLOAT_TARGETS}
    assert {"cpu", "torch", "onnxruntime"} <= set(FLOAT_TARGETS)


def test_linear_then_lif_then_flatten_on_cpu_writes_spikes(tmp_path) -> None:
    # the CLI path of the regression above: `slt run --target cpu -o y.npz` must save spikes
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    rng = np.random.default_rng(1)
    w = BinaryWeights(rng.random((6, 4)) < 0.7, rng.random((6, 4)) < 0.3, np.float32(0.6))
    ticket = slt.Ticket((Input("in", shape=(4,)), Linear("fc", w), LIF("lif", shape=(6,), threshold=0.3),
                         Flatten("flat"), Output("out")),
                        tuple(slt.ir.Edge(a, b) for a, b in (("in", "fc"), ("fc", "lif"), ("lif", "flat"),
                                                             ("flat", "out"))), 4)
    slt.save(ticket, tmp_path / "t.slt")
    np.save(tmp_path / "x.npy", rng.random((3, 4)).astype(np.float32))
    res = CliRunner().invoke(app, ["run", str(tmp_path / "t.slt"), "--input", str(tmp_path / "x.npy"),
                                   "--target", "cpu", "-o", str(tmp_path / "y.npz")])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "y.npz") as saved:
        assert "spikes" in saved.files
