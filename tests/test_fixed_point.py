"""The fixed-point conversion and reference (slt_deploy.fixed_point): numpy only, no Lava.

Oracles: Lava 0.10.0's fixed-point LIF equations worked by hand, the float reference
simulator (wherever the conversion report claims equality), and dense numpy algebra for
the sparse maps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import ticket_and_input

from slt_deploy.dispatch import Refusal
from slt_deploy.errors import SltInputError, SltUnsupportedError
from slt_deploy.fixed_point import (
    LOIHI2,
    SparseMap,
    conv_map,
    leaky_form,
    lif_step,
    make_plan,
    pool_map,
    simulate_fixed,
    to_fixed,
)
from slt_deploy.fixed_point.plan import HANDLERS
from slt_deploy.ir import (
    IF,
    LI,
    LIF,
    Add,
    BinaryWeights,
    Conv2d,
    Edge,
    Encoding,
    Flatten,
    FloatWeights,
    Input,
    Linear,
    MaxPool2d,
    Node,
    Output,
    SumPool2d,
    Ticket,
    sequential,
)
from slt_deploy.ir.nodes import NODE_KINDS
from slt_deploy.reference import simulate


def SETTINGS_N(n: int = 100) -> settings:
    return settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, max_examples=n)


SETTINGS = SETTINGS_N()


# ------------------------------------------------------------------ "grid" tickets
def _binary(rng: np.random.Generator, shape: tuple[int, ...], alpha: np.ndarray, p: float) -> BinaryWeights:
    return BinaryWeights(rng.random(shape) < p, rng.random(shape) < 0.4, alpha)


@st.composite
def grid_tickets(draw, families=("mlp", "conv", "recurrent"), decays: bool = True):
    """Binary tickets whose α, θ, bias and β sit on Loihi's grid most of the time (α = 2^-k,
    θ = α·q/4, bias = j/8, β ∈ {1, 1/2, 3/4, 7/8}); every reset and encoding; small sizes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    T = draw(st.integers(1, 6))

    def alpha(n: int) -> np.ndarray:
        if draw(st.booleans()):
            return np.full(n, 2.0 ** -draw(st.integers(0, 3)), np.float32)
        return (2.0 ** -rng.integers(0, 4, n)).astype(np.float32)

    def weights(shape: tuple[int, ...]) -> BinaryWeights:
        return _binary(rng, shape, alpha(shape[0]), draw(st.sampled_from([0.3, 0.7, 1.0])))

    def neuron(name: str, shape: tuple[int, ...], readout: bool = False) -> LIF | LI:
        if readout and draw(st.booleans()):
            return LI(name, shape=shape, beta=draw(st.sampled_from([1.0, 0.5, 0.75])))
        if draw(st.booleans()):
            theta = np.float32(draw(st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 3.0])))
        else:
            theta = (rng.integers(1, 8, shape) / 4).astype(np.float32)
        beta = draw(st.sampled_from([1.0, 1.0, 0.5, 0.75, 0.875])) if decays else 1.0
        bias = (rng.integers(-2, 3, shape) / 8).astype(np.float32) if draw(st.booleans()) else None
        reset = draw(st.sampled_from(["zero", "subtract", "subtract_delayed", "none"]))
        return LIF(name, shape=shape, beta=beta, threshold=theta, bias=bias, reset=reset)

    kind = draw(st.sampled_from(["spikes", "rate", "direct"]))
    encoding = Encoding(kind, 7 if kind == "rate" else None)
    family = draw(st.sampled_from(families))
    if family == "mlp":
        sizes = [draw(st.integers(1, 8)) for _ in range(draw(st.integers(2, 3)))]
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
            layers += [Linear(f"fc{i}", weights((b, a))), neuron(f"l{i}", (b,), readout=i == len(sizes) - 2)]
        ticket = sequential((sizes[0],), layers, T, encoding)
    elif family == "conv":
        c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3))
        h, w, k = draw(st.integers(3, 6)), draw(st.integers(3, 6)), draw(st.integers(1, 3))
        pad, stride = draw(st.integers(0, 1)), draw(st.integers(1, 2))
        conv = Conv2d("conv", weights((c_out, c_in, k, k)), padding=(pad, pad), stride=(stride, stride))
        shape = conv.out_shape([(c_in, h, w)])
        theta = np.float32(draw(st.sampled_from([0.25, 0.5, 1.0])))
        layers = [conv]
        pool = draw(st.sampled_from(["none", "max", "sum"])) if min(shape[1:]) >= 2 else "none"
        if pool == "sum":
            layers.append(SumPool2d("sp", kernel_size=(2, 2)))
            shape = layers[-1].out_shape([shape])
        layers.append(LIF("l1", shape, threshold=theta))
        if pool == "max":
            layers.append(MaxPool2d("mp", kernel_size=(2, 2)))
            shape = layers[-1].out_shape([shape])
        o = draw(st.integers(1, 4))
        layers += [Flatten("fl"), Linear("fc", weights((o, int(np.prod(shape))))), neuron("l2", (o,), readout=True)]
        ticket = sequential((c_in, h, w), layers, T, encoding)
    else:
        n, m, o = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
        nodes = (Input("in", shape=(n,)), Linear("fin", weights((m, n))), Linear("frec", weights((m, m))), Add("add"),
                 neuron("lif", (m,)), Linear("fo", weights((o, m))), neuron("lo", (o,), readout=True), Output("out"))
        edges = [Edge("in", "fin"), Edge("fin", "add"), Edge("frec", "add"), Edge("add", "lif"),
                 Edge("lif", "frec", recurrent=True), Edge("lif", "fo"), Edge("fo", "lo"), Edge("lo", "out")]
        ticket = Ticket(nodes, tuple(edges), T, encoding)
    batch = draw(st.integers(1, 3))
    if kind == "spikes":
        x = (rng.random((T, batch, *ticket.input_shape)) < 0.5).astype(np.float32)
    elif kind == "rate":
        x = rng.random((batch, *ticket.input_shape)).astype(np.float32)
    else:
        x = (rng.integers(-4, 9, (batch, *ticket.input_shape)) / 4).astype(np.float32)
    return ticket, x


def mlp(alpha: float = 0.5, theta: float = 0.5, beta: float = 1.0, T: int = 6, seed: int = 0, **lif) -> Ticket:
    rng = np.random.default_rng(seed)
    w1 = _binary(rng, (8, 10), np.full(8, alpha, np.float32), 0.6)
    w2 = _binary(rng, (3, 8), np.full(3, alpha, np.float32), 0.6)
    return sequential((10,), [Linear("fc1", w1), LIF("l1", (8,), beta=beta, threshold=theta, **lif),
                              Linear("fc2", w2), IF("l2", (3,), threshold=theta)], T, Encoding("spikes"))


def spikes(ticket: Ticket, batch: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((ticket.timesteps, batch, *ticket.input_shape)) < 0.5).astype(np.float32)


# ------------------------------------------------------------------ Loihi's integer neuron
def test_lif_step_matches_lavas_equations_worked_by_hand() -> None:
    # lava/proc/lif/models.py AbstractPyLifModelFixed.subthr_dynamics with du = 4095 (ds_offset 1):
    # u = a << 6;  v = sign(v·(4096−dv)) · (|v·(4096−dv)| >> 12) + u + (bias_mant << 6)
    u0 = np.array([123, 0, 0, 0])
    v0 = np.array([1000, -1000, 5, -5])
    a = np.array([1, -2, 0, 0])
    dv = np.array([1024, 1024, 2048, 2048])          # β = 3/4, 3/4, 1/2, 1/2
    u, v, events = lif_step(u0, v0, a, dv, np.array([0, 0, 1, 0]))
    assert u.tolist() == [64, -128, 0, 0]             # the current does not persist (du = 4095)
    assert v.tolist() == [750 + 64, -750 - 128, 2 + 64, -2]  # 5·2048 >> 12 = 2; −5 truncates toward zero to −2
    assert events == 0


def test_lif_step_wraps_the_current_and_clips_the_voltage_like_lava() -> None:
    # u beyond +2^23 wraps once by 2^24; v clips to ±(2^23 − 1); both are counted
    MAX_UV = LOIHI2.max_uv
    assert MAX_UV == 1 << 23
    a = np.array([(1 << 17) + 1, -((1 << 17) + 1), 1 << 17])
    u, v, events = lif_step(np.zeros(3, np.int64), np.zeros(3, np.int64), a, np.zeros(3, np.int64), np.zeros(3))
    assert u[0] == ((1 << 17) + 1) * 64 - 2 * MAX_UV
    assert u[1] == -((1 << 17) + 1) * 64 + 2 * MAX_UV
    assert u[2] == MAX_UV                             # exactly 2^23 is not wrapped (Lava's `>` test)
    _, v2, ev2 = lif_step(np.zeros(1), np.array([MAX_UV - 10]), np.array([1]), np.zeros(1, np.int64), np.zeros(1))
    assert v2[0] == MAX_UV - 1 and ev2 == 1
    assert v[2] == MAX_UV - 1 and events == 3           # two wrapped currents, one clipped voltage


# ------------------------------------------------------------------ sparse maps
@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_sparse_maps_compose_and_apply_like_dense_algebra(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, (5, 7)) * (rng.random((5, 7)) < 0.4)
    b = rng.integers(-3, 4, (7, 4)) * (rng.random((7, 4)) < 0.5)
    ma, mb = SparseMap.from_dense(a.astype(float)), SparseMap.from_dense(b.astype(float))
    np.testing.assert_array_equal(ma.compose(mb).todense(), a @ b)
    np.testing.assert_array_equal(ma.plus(ma).todense(), 2 * a)
    x = rng.integers(0, 2, (3, 7))
    np.testing.assert_array_equal(ma.apply(x), x @ a.T)


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_conv_and_pool_maps_equal_the_reference_ops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = int(rng.integers(1, 3))
    c_in, c_out = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    conv = Conv2d("c", FloatWeights(np.ones((c_out, c_in // g, *k), bool),
                                    rng.integers(-2, 3, (c_out, c_in // g, *k)).astype(np.float32)),
                  stride=tuple(rng.integers(1, 3, 2)), padding=tuple(rng.integers(0, 2, 2)),
                  dilation=tuple(rng.integers(1, 3, 2)), groups=g)
    shape = (c_in, 7, 6)
    out = conv.out_shape([shape])
    x = (rng.random((2, *shape)) < 0.5).astype(np.float32)
    t = sequential(shape, [conv, LI("li", out)], 1, Encoding("spikes"))
    ref = simulate(t, x[None]).output[0].reshape(2, -1)
    m = conv_map(shape, conv.weights.values.astype(float), conv.stride, conv.padding, conv.dilation, g)
    np.testing.assert_array_equal(m.apply(x.reshape(2, -1)), ref)
    pool = SumPool2d("p", kernel_size=(2, 2), stride=(2, 1), padding=(1, 0))
    pshape = pool.out_shape([shape])
    tp = sequential(shape, [pool, LI("li", pshape)], 1, Encoding("spikes"))
    pm = pool_map(shape, pool.kernel_size, pool.stride, pool.padding)
    np.testing.assert_array_equal(pm.apply(x.reshape(2, -1)), simulate(tp, x[None]).output[0].reshape(2, -1))


# ------------------------------------------------------------------ the conversion
def test_binary_if_on_the_grid_is_exact_with_the_smallest_vth() -> None:
    # α/θ = 1/2 -> vth = 2 and weights ±1: an integer membrane counting α/θ steps exactly
    fixed = to_fixed(mlp(alpha=0.25, theta=0.5))
    layer = fixed.report["layers"][0]
    assert layer["vth"] == 2 and layer["max_abs_weight"] == 1 and layer["dv"] == 0 and layer["du"] == 4095
    assert all(layer["exact"].values()) and layer["spikes_equal_reference"] is True
    assert fixed.report["spikes_equal_reference"] is True and fixed.report["delay_steps"] == 2
    assert set(fixed.layers[0].synapses[0].W.vals.tolist()) <= {-1, 1}


def test_per_neuron_thresholds_fold_into_per_row_weights() -> None:
    rng = np.random.default_rng(0)
    theta = np.array([0.5, 1.0, 0.25, 0.75], np.float32)
    t = sequential((6,), [Linear("fc", _binary(rng, (4, 6), np.full(4, 0.25, np.float32), 1.0)),
                          IF("l", (4,), threshold=theta)], 4, Encoding("spikes"))
    fixed = to_fixed(t)
    W = fixed.layers[0].synapses[0].W.todense(np.int64)
    vth = fixed.layers[0].vth
    np.testing.assert_array_equal(np.abs(W).max(axis=1) * theta / 0.25, vth)  # w = α·vth/θ per row
    x = spikes(t)
    np.testing.assert_array_equal(fixed.simulate(x).output, simulate(t, x).output)


def test_off_grid_ticket_is_converted_and_the_report_says_why() -> None:
    t = mlp(alpha=0.3, theta=0.7, beta=0.9)
    report = to_fixed(t).report
    layer = report["layers"][0]
    assert report["spikes_equal_reference"] is False
    assert not layer["exact"]["weights"] and not layer["exact"]["decay"]
    text = " ".join(layer["notes"])
    assert "decay β is not a multiple of 1/4096" in text and "weights are not on the grid" in text
    assert layer["max_abs_weight"] <= 127


def test_decays_on_the_grid_are_exact_when_the_membrane_has_the_low_bits() -> None:
    fixed = to_fixed(mlp(alpha=0.25, theta=0.5, beta=0.5, T=6))
    layer = fixed.report["layers"][0]
    assert layer["dv"] == 2048 and layer["exact"]["decay"] and layer["spikes_equal_reference"] is True
    # β = 7/8 consumes 3 bits per step: over many steps the decays truncate and the report says so
    long = to_fixed(mlp(alpha=1.0, theta=1.0, beta=0.875, T=40)).report["layers"][0]
    assert not long["exact"]["decay"] and any("truncate" in n for n in long["notes"])


def test_direct_input_is_sent_as_graded_integers_with_a_reported_scale() -> None:
    t = sequential((4,), [Linear("fc", _binary(np.random.default_rng(0), (3, 4), np.full(3, 0.5, np.float32), 1.0)),
                          IF("l", (3,), threshold=1.0)], 3, Encoding("direct"))
    x = np.array([[0.25, 1.5, -0.75, 0.0]], np.float32)
    fixed = to_fixed(t, x)
    assert fixed.input_frac_bits == 2 and fixed.report["input"]["exact"] is True
    assert fixed.input_values(x)[0, 0].tolist() == [1, 6, -3, 0]
    np.testing.assert_array_equal(fixed.simulate(x).output, simulate(t, x).output)
    off = to_fixed(t, np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)).report
    assert off["input"]["exact"] is False and off["spikes_equal_reference"] is False
    assert to_fixed(t).report["layers"][0]["spikes_equal_reference"] is None  # decided per run


def test_maxpool_of_spikes_becomes_an_or_layer_and_delays_one_more_step() -> None:
    rng = np.random.default_rng(3)
    conv = Conv2d("conv", _binary(rng, (2, 1, 3, 3), np.full(2, 0.5, np.float32), 0.7), padding=(1, 1))
    t = sequential((1, 4, 4), [conv, IF("l1", (2, 4, 4), threshold=0.5), MaxPool2d("mp", kernel_size=(2, 2)),
                               Flatten("f"), Linear("fc", _binary(rng, (3, 8), np.full(3, 0.5, np.float32), 0.7)),
                               IF("l2", (3,), threshold=0.5)], 5, Encoding("spikes"))
    plan = make_plan(t)
    assert [(layer.name, layer.kind, layer.depth) for layer in plan.layers] == [
        ("l1", "lif", 1), ("mp", "or", 2), ("l2", "lif", 3)]
    x = spikes(t, 2)
    fixed = to_fixed(t, x)
    assert fixed.report["spikes_equal_reference"] is True
    np.testing.assert_array_equal(fixed.simulate(x).output, simulate(t, x).output)
    np.testing.assert_array_equal(fixed.simulate(x).layers["mp"], simulate(t, x).layers["mp"])


def test_residual_joins_get_delays_and_recurrence_needs_none() -> None:
    rng = np.random.default_rng(0)

    def lin(name: str, o: int, i: int) -> Linear:
        return Linear(name, _binary(rng, (o, i), np.full(o, 0.5, np.float32), 0.6))

    nodes = (Input("in", shape=(5,)), lin("fa", 4, 5), IF("la", (4,), threshold=0.5), lin("fb", 4, 4),
             IF("lb", (4,), threshold=0.5), Add("add"), lin("fo", 3, 4), IF("lo", (3,), threshold=0.5), Output("o"))
    edges = [Edge("in", "fa"), Edge("fa", "la"), Edge("la", "fb"), Edge("fb", "lb"), Edge("la", "add"),
             Edge("lb", "add"), Edge("add", "fo"), Edge("fo", "lo"), Edge("lo", "o")]
    plan = make_plan(Ticket(nodes, tuple(edges), 4, Encoding("spikes")))
    lo = plan.layer("lo")
    assert lo.depth == 3 and {s.src: s.delay for s in lo.sources} == {"la": 1, "lb": 0}


@pytest.mark.parametrize("make, message", [
    (lambda: sequential((3,), [Linear("fc", FloatWeights(np.ones((2, 3), bool), np.ones((2, 3), np.float32))),
                               LIF("l", (2,), threshold=-1.0)], 2, Encoding("spikes")), "negative thresholds"),
    (lambda: sequential((3,), [Linear("fc", FloatWeights(np.ones((2, 3), bool), np.ones((2, 3), np.float32))),
                               LIF("l", (2,), threshold=np.array([0.0, 1.0], np.float32))], 2, Encoding("spikes")),
     "mix zero and positive"),
    (lambda: sequential((3,), [Linear("fc", FloatWeights(np.ones((2, 3), bool), np.ones((2, 3), np.float32))),
                               LI("li", (2,)), Linear("fc2", FloatWeights(np.ones((1, 2), bool),
                                                                         np.ones((1, 2), np.float32))),
                               IF("l", (1,))], 2, Encoding("spikes")), "only as the output readout"),
    (lambda: sequential((1, 4, 4), [Conv2d("c", FloatWeights(np.ones((1, 1, 1, 1), bool),
                                                             np.full((1, 1, 1, 1), 2.0, np.float32))),
                                    MaxPool2d("mp", kernel_size=(2, 2)), IF("l", (1, 2, 2))], 2, Encoding("spikes")),
     "MaxPool2d over currents"),
    (lambda: sequential((3,), [Linear("fc", FloatWeights(np.ones((2, 3), bool), np.ones((2, 3), np.float32)))],
                        2, Encoding("spikes")), "must be a neuron layer"),
])
def test_what_loihi_cannot_run_is_refused_naming_the_node(make, message) -> None:
    with pytest.raises(SltUnsupportedError, match=message):
        to_fixed(make())


def test_graded_spike_trains_are_sent_as_graded_messages() -> None:
    rng = np.random.default_rng(0)
    t = sequential((5,), [Linear("fc", _binary(rng, (3, 5), np.full(3, 0.5, np.float32), 0.8)),
                          IF("l", (3,), threshold=1.0)], 4, Encoding("spikes"))
    x = (rng.integers(0, 3, (4, 2, 5)) / 2).astype(np.float32)
    fixed = to_fixed(t, x)
    assert fixed.layers[0].synapses[0].graded and fixed.input_frac_bits == 1
    assert fixed.report["spikes_equal_reference"] is True
    np.testing.assert_array_equal(fixed.simulate(x).output, simulate(t, x).output)
    pooled = sequential((1, 4, 4), [MaxPool2d("mp", kernel_size=(2, 2)), Flatten("f"),
                                    Linear("fc", _binary(rng, (2, 4), np.full(2, 0.5, np.float32), 1.0)),
                                    IF("l", (2,), threshold=0.5)], 2, Encoding("spikes"))
    to_fixed(pooled, np.ones((2, 1, 1, 4, 4), np.float32))  # a max-pool of 0/1 spikes maps
    with pytest.raises(SltUnsupportedError, match="node 'mp'"):
        to_fixed(pooled, np.full((2, 1, 1, 4, 4), 0.5, np.float32))


def test_bad_input_is_a_typed_error() -> None:
    t = mlp()
    with pytest.raises(SltInputError):
        simulate_fixed(t, np.zeros((2, 3, 10)))          # wrong T
    with pytest.raises(SltInputError):
        to_fixed(sequential((2,), [Linear("fc", FloatWeights(np.ones((1, 2), bool), np.ones((1, 2), np.float32))),
                                   IF("l", (1,))], 2, Encoding("direct")), input_frac_bits=40)


# ------------------------------------------------------------------ the claims, as properties
@SETTINGS_N(150)
@given(grid_tickets())
def test_where_the_report_claims_equality_the_fixed_reference_equals_the_float_reference(case) -> None:
    ticket, x = case
    fixed = to_fixed(ticket, x)
    result = fixed.simulate(x)
    if fixed.report["spikes_equal_reference"]:
        ref = simulate(ticket, x)
        np.testing.assert_array_equal(result.output, ref.output)
        for name, values in result.layers.items():
            np.testing.assert_array_equal(values, ref.layers[name], err_msg=name)
        assert not any(result.diagnostics.saturation.values())


@SETTINGS_N(40)
@given(grid_tickets(decays=False))
def test_every_layer_states_its_exactness_facts_and_reasons(case) -> None:
    ticket, x = case
    fixed = to_fixed(ticket, x)
    layers = fixed.report["layers"]
    # every layer states all its exactness facts, and an unequal claim always carries a reason
    for layer in layers:
        assert set(layer["exact"]) == {"weights", "bias", "threshold", "decay", "reset", "input", "no_overflow",
                                       "float_reference"}
        if layer["spikes_equal_reference"] is False:
            assert layer["notes"]


@pytest.mark.slow
@SETTINGS_N(200)
@given(ticket_and_input())
def test_any_ticket_loihi_accepts_runs_and_claims_only_what_holds(case) -> None:
    ticket, x = case
    try:
        fixed = to_fixed(ticket, x)
    except SltUnsupportedError:
        return
    result = fixed.simulate(x)
    assert result.output.shape == simulate(ticket, x).output.shape
    if fixed.report["spikes_equal_reference"]:
        np.testing.assert_array_equal(result.output, simulate(ticket, x).output)


# ------------------------------------------------------------------ one neuron mapping, one chip spec, one table
def _layer(neuron: LIF | LI) -> object:
    t = sequential((3,), [Linear("fc", FloatWeights(np.ones((2, 3), bool), np.ones((2, 3), np.float32))), neuron],
                       2, Encoding("spikes"))
    return make_plan(t).layer(neuron.name)


def test_the_leaky_form_of_every_neuron_kind_worked_by_hand() -> None:
    f = leaky_form(_layer(LIF("l", (2,), beta=0.75, threshold=0.5, reset="subtract", reset_amount=np.float32(0.25))))
    assert f.beta.tolist() == [0.75] * 2 and f.gain.tolist() == [1.0] * 2 and f.theta.tolist() == [0.5] * 2
    assert f.reset == "subtract" and f.reset_amount.tolist() == [0.25] * 2 and f.same_operations and f.note is None
    f = leaky_form(_layer(LIF("l", (2,), threshold=1.0, charge="decay_input", tau=4.0)))  # v + (I − v)/τ
    assert f.beta.tolist() == [0.75] * 2 and f.gain.tolist() == [0.25] * 2 and not f.same_operations
    assert "input scaled by 1/τ" in f.note
    f = leaky_form(_layer(LIF("l", (2,), threshold=1.0, charge="leaky_tau", tau=2.0)))    # (v − v/τ) + I
    assert f.beta.tolist() == [0.5] * 2 and f.gain.tolist() == [1.0] * 2 and "input scaled" not in f.note
    f = leaky_form(_layer(LI("l", (2,), beta=0.5)))
    assert f.beta.tolist() == [0.5] * 2 and f.theta.tolist() == [1.0] * 2 and f.reset == "none"
    pooled = sequential((1, 2, 2), [MaxPool2d("mp", kernel_size=(2, 2)), Flatten("f"), Linear(
        "fc", FloatWeights(np.ones((1, 1), bool), np.ones((1, 1), np.float32))), IF("l", (1,))], 2, Encoding("spikes"))
    f = leaky_form(make_plan(pooled).layer("mp"))                                          # OR of each window
    assert f.beta.tolist() == [0.0] and f.theta.tolist() == [0.5] and f.reset == "zero"


@pytest.mark.parametrize("r", [0.1, 3e38])
@pytest.mark.parametrize("reset", ["zero", "none"])
def test_a_reset_that_never_subtracts_keeps_reset_amount_out_of_the_conversion(reset: str, r: float) -> None:
    # r acts only in the subtracting resets. The Lava float target's copy of the neuron mapping once
    # carried it for every reset; here, an r the neuron never uses must not change the integers, the
    # exactness proof (0.1 is off the grid) or the overflow bound (3e38·64·vth/θ overflows int64).
    plain = mlp(alpha=0.25, theta=0.5, beta=0.5, reset=reset)
    odd = mlp(alpha=0.25, theta=0.5, beta=0.5, reset=reset, reset_amount=np.float32(r))
    assert leaky_form(make_plan(odd).layer("l1")).reset_amount.tolist() == [0.0] * 8
    fixed = to_fixed(odd)
    assert fixed.report == to_fixed(plain).report and fixed.report["spikes_equal_reference"] is True
    assert not np.any(fixed.layer("l1").reset_amount)
    x = spikes(odd)
    np.testing.assert_array_equal(fixed.simulate(x).output, simulate(odd, x).output)
    np.testing.assert_array_equal(fixed.simulate(x).layers["l1"], simulate(odd, x).layers["l1"])


def test_subtract_resets_carry_reset_amount_in_membrane_units() -> None:
    fixed = to_fixed(mlp(alpha=0.25, theta=0.5, reset="subtract", reset_amount=np.float32(0.25)))
    layer = fixed.layer("l1")                                # λ = 64·vth/θ = 64·2/0.5: r = 0.25 -> 64
    assert layer.vth == 2 and layer.reset_amount.tolist() == [64] * 8


def test_the_chip_spec_is_one_frozen_object() -> None:
    assert (LOIHI2.decay_unity, LOIHI2.du_full, LOIHI2.max_uv, LOIHI2.vth_max) == (4096, 4095, 1 << 23, (1 << 17) - 1)
    assert (LOIHI2.input_max, LOIHI2.current_max, LOIHI2.weight_max) == ((1 << 15) - 1, 1 << 17, 254)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LOIHI2.vth_bits = 20  # type: ignore[misc]
    with pytest.raises(ValueError, match="act_shift == bias_exp == vth_shift"):
        dataclasses.replace(LOIHI2, bias_exp=4)
    with pytest.raises(ValueError, match="weight_max"):
        dataclasses.replace(LOIHI2, weight_max=300)


SMALL_CHIP = dataclasses.replace(LOIHI2, name="test chip", decay_shift=8, dv_max=256, state_bits=20, vth_bits=8,
                                 weight_bits=4, weight_mant_max=7, weight_max=14)


def test_lif_step_follows_the_chip_spec() -> None:
    # decays in 1/256: 1000·(256 − 64) >> 8 = 750 (β = 3/4); u = a << 6; v clips to ±(2^19 − 1)
    u, v, events = lif_step(np.zeros(2), np.array([1000, (1 << 19) - 10]), np.array([1, 1]), np.array([64, 0]),
                            np.zeros(2), chip=SMALL_CHIP)
    assert u.tolist() == [64, 64] and v.tolist() == [814, (1 << 19) - 1] and events == 1


@SETTINGS_N(60)
@given(grid_tickets())
def test_another_chip_spec_is_honoured_and_its_claims_hold(case) -> None:
    ticket, x = case
    fixed = to_fixed(ticket, x, chip=SMALL_CHIP)
    assert fixed.chip is SMALL_CHIP
    for layer in fixed.layers:
        assert 0 <= layer.vth <= 255 and np.all(layer.dv <= 256) and np.all(np.abs(layer.bias_mant) <= 4095)
        assert all(np.all(np.abs(s.W.vals) <= 14) for s in layer.synapses)
        assert layer.report["du"] == 255 and layer.report["weight_bits"] == 4
    result = fixed.simulate(x)
    if fixed.report["spikes_equal_reference"]:
        ref = simulate(ticket, x)
        for name, values in result.layers.items():
            np.testing.assert_array_equal(values, ref.layers[name], err_msg=name)
        assert not any(result.diagnostics.saturation.values())


class _Mystery(Node):
    """A node kind nobody handles; ``kind`` is set after the class exists, so it stays out of NODE_KINDS."""


_Mystery.kind = "mystery"


def test_the_plan_handles_every_node_kind_and_refuses_an_unknown_one_naming_it() -> None:
    kinds = {kind for kind, cls in NODE_KINDS.items() if cls.__module__.startswith("slt_deploy.")}
    # the token/attention kinds are not planned for Loihi yet: named refusals
    from slt_deploy.ir.tokens import TOKEN_KINDS

    refused = {cls.kind for cls in TOKEN_KINDS}
    assert all(isinstance(HANDLERS[k], Refusal) for k in refused)
    kinds -= refused
    assert kinds <= set(HANDLERS) and not any(isinstance(HANDLERS[k], Refusal) for k in kinds)
    good = mlp()
    nodes = tuple(_Mystery("odd.one") if n.name == "fc2" else n for n in good.nodes)
    bad = Ticket.__new__(Ticket)
    object.__setattr__(bad, "nodes", nodes)
    for name in ("edges", "timesteps", "encoding", "metadata", "order", "shapes"):
        object.__setattr__(bad, name, getattr(good, name))
    with pytest.raises(SltUnsupportedError, match="node 'odd.one'.*'mystery'"):
        to_fixed(bad)


def test_an_output_read_one_step_late_is_refused() -> None:
    # the reference outputs the layer's previous step over a recurrent edge; Loihi reads the layer itself
    fc = Linear("fc", FloatWeights(np.ones((2, 3), bool), np.ones((2, 3), np.float32)))
    t = Ticket((Input("in", shape=(3,)), fc, IF("l", (2,), threshold=0.5), Output("out")),
               (Edge("in", "fc"), Edge("fc", "l"), Edge("l", "out", recurrent=True)), 3, Encoding("spikes"))
    with pytest.raises(SltUnsupportedError, match="output 'out': it reads 'l' one step late"):
        to_fixed(t)
