"""The Lava target (slt_deploy.targets.lava) on lava-nc 0.10.0's Loihi2SimCfg.

Oracles: the fixed-point reference (Lava fixed_pt must equal it on every ticket Lava
accepts), the float reference (where the conversion report claims equality), and Lava's
own sources for the Python 3.11 fix. Lava runs take a few seconds each: tickets are small.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from slt_deploy.targets import lava as lava_target
from strategies import ticket_and_input
from typer.testing import CliRunner

import slt_deploy as slt
from slt_deploy.errors import SltInputError, SltUnsupportedError
from slt_deploy.fixed_point import simulate_fixed, to_fixed
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
    Input,
    Linear,
    MaxPool2d,
    Output,
    Ticket,
    sequential,
)
from slt_deploy.reference import simulate

pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(not lava_target.lava_available(), reason="lava-nc is not installed (tools/bootstrap.sh)"),
]


def binary(rng: np.random.Generator, shape: tuple[int, ...], alpha: float, p: float = 0.6) -> BinaryWeights:
    return BinaryWeights(rng.random(shape) < p, rng.random(shape) < 0.3, np.full(shape[0], alpha, np.float32))


def check_fixed(ticket: Ticket, x: np.ndarray, **options) -> slt.Result:
    """Run on Lava fixed_pt; it must equal the fixed-point reference in every recorded layer."""
    result = lava_target.run(ticket, x, **options)
    conv = any(kind == "Conv" for kind in result.diagnostics.conversion["processes"].values())
    expected = simulate_fixed(ticket, x, clamp_conv=conv)
    np.testing.assert_array_equal(result.output, expected.output)
    assert result.layers.keys() == expected.layers.keys()
    for name in expected.layers:
        np.testing.assert_array_equal(result.layers[name], expected.layers[name], err_msg=name)
    for name, counts in expected.spike_counts.items():
        np.testing.assert_array_equal(result.spike_counts[name], counts)
    assert result.target == "lava" and result.output.shape == simulate(ticket, x).output.shape
    return result


def mlp_ticket(encoding: Encoding = Encoding("rate", seed=5)) -> Ticket:
    rng = np.random.default_rng(0)
    return sequential((12,), [Linear("fc1", binary(rng, (10, 12), 0.5)), IF("l1", (10,), threshold=0.5),
                              Linear("fc2", binary(rng, (4, 10), 0.25)), IF("l2", (4,), threshold=0.5)],
                      8, encoding)


# ------------------------------------------------------------------ Python 3.11 fix
def test_var_model_is_loaded_from_its_rewritten_source() -> None:
    from slt_deploy.targets.lava._compat import VAR_MODEL, patched_var_model_source

    module = sys.modules[VAR_MODEL]
    with open(module.__file__, encoding="utf-8") as fh:
        fixed, count = patched_var_model_source(fh.read())
    assert count == 8  # CoreEncoder.x/y/p, ChipEncoder.x/y/z, AxonEncoder.hi/lo
    field = {f.name: f for f in dataclasses.fields(module.CoreEncoder)}["x"]
    assert field.default_factory is module.ByteEncoder
    a, b = module.CoreEncoder(), module.CoreEncoder()
    assert a.x == module.ByteEncoder() and a.x is not b.x  # a fresh encoder per instance


# ------------------------------------------------------------------ equality with the references
def test_binary_mlp_on_the_grid_equals_both_references() -> None:
    ticket = mlp_ticket()
    x = np.random.default_rng(1).random((3, 12)).astype(np.float32)
    result = check_fixed(ticket, x)
    assert result.diagnostics.conversion["spikes_equal_reference"] is True
    assert set(result.diagnostics.conversion["processes"].values()) == {"Sparse"}  # batch 3: block-diagonal Sparse
    np.testing.assert_array_equal(result.output, simulate(ticket, x).output)
    assert result.output.sum() > 0
    floating = lava_target.run(ticket, x, mode="floating_pt")
    assert floating.target == "lava-float"
    np.testing.assert_array_equal(floating.output, simulate(ticket, x).output)


def test_batch_of_one_uses_dense_and_agrees() -> None:
    ticket = mlp_ticket(Encoding("spikes"))
    x = (np.random.default_rng(2).random((8, 1, 12)) < 0.5).astype(np.float32)
    result = check_fixed(ticket, x)
    assert set(result.diagnostics.conversion["processes"].values()) == {"Dense"}
    np.testing.assert_array_equal(result.output, simulate(ticket, x).output)


def test_conv_maxpool_ticket_runs_on_conv_processes() -> None:
    rng = np.random.default_rng(3)
    conv = Conv2d("conv", binary(rng, (3, 2, 3, 3), 0.5, 0.7), stride=(1, 2), padding=(1, 1))
    shape = conv.out_shape([(2, 6, 6)])
    pooled = (3, shape[1] // 2, shape[2])
    ticket = sequential((2, 6, 6), [conv, IF("l1", shape, threshold=0.5), MaxPool2d("mp", kernel_size=(2, 1)),
                                    Flatten("flat"), Linear("fc", binary(rng, (4, int(np.prod(pooled))), 0.5)),
                                    IF("l2", (4,), threshold=0.5)], 6, Encoding("spikes"))
    x = (rng.random((6, 1, 2, 6, 6)) < 0.5).astype(np.float32)
    result = check_fixed(ticket, x)
    assert result.diagnostics.conversion["processes"] == {"l1<-input": "Conv", "mp<-l1": "Conv", "l2<-mp": "Dense"}
    assert result.diagnostics.conversion["delay_steps"] == 3
    np.testing.assert_array_equal(result.output, simulate(ticket, x).output)
    np.testing.assert_array_equal(result.layers["mp"], simulate(ticket, x).layers["mp"])


def test_recurrent_lif_with_bias_and_subtract_reset() -> None:
    rng = np.random.default_rng(4)
    nodes = (Input("in", shape=(5,)), Linear("fin", binary(rng, (6, 5), 0.5)),
             Linear("frec", binary(rng, (6, 6), 0.25)), Add("add"),
             LIF("lif", (6,), beta=0.5, threshold=0.5, bias=np.float32(0.125), reset="subtract"),
             Linear("fo", binary(rng, (3, 6), 0.5)), LIF("lo", (3,), threshold=0.5, reset="subtract_delayed"),
             Output("out"))
    edges = [Edge("in", "fin"), Edge("fin", "add"), Edge("frec", "add"), Edge("add", "lif"),
             Edge("lif", "frec", recurrent=True), Edge("lif", "fo"), Edge("fo", "lo"), Edge("lo", "out")]
    ticket = Ticket(nodes, tuple(edges), 6, Encoding("spikes"))
    x = (rng.random((6, 2, 5)) < 0.5).astype(np.float32)
    result = check_fixed(ticket, x)
    assert result.diagnostics.conversion["spikes_equal_reference"] is True
    np.testing.assert_array_equal(result.output, simulate(ticket, x).output)
    np.testing.assert_array_equal(result.layers["lif"], simulate(ticket, x).layers["lif"])
    floating = lava_target.run(ticket, x, mode="floating_pt")
    np.testing.assert_array_equal(floating.output, simulate(ticket, x).output)


def test_residual_join_is_aligned_with_delay_sparse() -> None:
    rng = np.random.default_rng(5)

    def lin(name: str, o: int, i: int) -> Linear:
        return Linear(name, binary(rng, (o, i), 0.5))

    nodes = (Input("in", shape=(5,)), lin("fa", 4, 5), IF("la", (4,), threshold=0.5), lin("fb", 4, 4),
             IF("lb", (4,), threshold=0.5), Add("add"), lin("fo", 3, 4), IF("lo", (3,), threshold=0.5), Output("o"))
    edges = [Edge("in", "fa"), Edge("fa", "la"), Edge("la", "fb"), Edge("fb", "lb"), Edge("la", "add"),
             Edge("lb", "add"), Edge("add", "fo"), Edge("fo", "lo"), Edge("lo", "o")]
    ticket = Ticket(nodes, tuple(edges), 5, Encoding("spikes"))
    x = (rng.random((5, 2, 5)) < 0.6).astype(np.float32)
    result = check_fixed(ticket, x)
    assert result.diagnostics.conversion["processes"]["lo<-la"] == "DelaySparse"
    np.testing.assert_array_equal(result.output, simulate(ticket, x).output)


def test_direct_input_and_li_readout_values() -> None:
    rng = np.random.default_rng(6)
    ticket = sequential((6,), [Linear("fc1", binary(rng, (8, 6), 0.5), bias=np.full(8, 0.25, np.float32)),
                               LIF("l1", (8,), beta=0.75, threshold=1.0), Linear("fc2", binary(rng, (3, 8), 0.25)),
                               LI("readout", (3,), beta=0.5)], 4, Encoding("direct"))
    x = (rng.integers(-2, 8, (2, 6)) / 4).astype(np.float32)
    result = check_fixed(ticket, x)
    assert not result.spiking and result.diagnostics.conversion["input"]["frac_bits"] == 2
    assert result.diagnostics.conversion["spikes_equal_reference"] is True
    np.testing.assert_array_equal(result.output, simulate(ticket, x).output)  # membrane values, exactly


def test_off_grid_ticket_runs_equals_the_fixed_reference_and_reports_why() -> None:
    rng = np.random.default_rng(7)
    ticket = sequential((12,), [Linear("fc1", binary(rng, (10, 12), 0.3)), LIF("l1", (10,), beta=0.9, threshold=0.7),
                                Linear("fc2", binary(rng, (4, 10), 0.37)), IF("l2", (4,), threshold=1.1)],
                        8, Encoding("rate", seed=2))
    x = rng.random((3, 12)).astype(np.float32)
    result = check_fixed(ticket, x)
    assert result.diagnostics.conversion["spikes_equal_reference"] is False
    notes = " ".join(n for layer in result.diagnostics.conversion["layers"] for n in layer["notes"])
    assert "not a multiple of 1/4096" in notes and "not on the grid" in notes
    sem, why = lava_target.semantics(ticket)
    assert sem == {"fixed-point"} and any("1/4096" in w for w in why)
    agreement = float((result.output == simulate(ticket, x).output).mean())
    assert 0.5 < agreement <= 1.0


@pytest.mark.parametrize("reset", ["none", "zero", "subtract_delayed"])
def test_fixed_and_float_lava_read_the_one_neuron_mapping(reset: str) -> None:
    # slt's own SltLIF process (per-neuron decays, or a reset Lava's LIF lacks), a reset amount 0.25 != θ:
    # r enters the neurons only when the reset subtracts (slt_deploy.fixed_point.neuron), in both modes
    from slt_deploy.targets.lava._network import _float_layers

    from slt_deploy.fixed_point import leaky_form, make_plan

    rng = np.random.default_rng(9)
    beta = np.array([0.5] * 5 + [0.75] * 5, np.float32) if reset != "subtract_delayed" else np.float32(0.5)
    ticket = sequential((12,), [Linear("fc1", binary(rng, (10, 12), 0.5)),
                                LIF("l1", (10,), beta=beta, threshold=0.5, reset=reset, reset_amount=np.float32(0.25)),
                                Linear("fc2", binary(rng, (4, 10), 0.25)), IF("l2", (4,), threshold=0.5)],
                        5, Encoding("spikes"))
    x = (rng.random((5, 2, 12)) < 0.5).astype(np.float32)
    result = check_fixed(ticket, x)
    ref = simulate(ticket, x)
    assert result.diagnostics.conversion["spikes_equal_reference"] is True and ref.layers["l1"].sum() > 0
    np.testing.assert_array_equal(result.layers["l1"], ref.layers["l1"])
    floating = lava_target.run(ticket, x, mode="floating_pt")
    np.testing.assert_array_equal(floating.layers["l1"], ref.layers["l1"])
    plan = make_plan(ticket)
    float_l1 = _float_layers(plan)[0]
    assert not float_l1.stock
    np.testing.assert_array_equal(float_l1.params["reset_amount"], leaky_form(plan.layer("l1")).reset_amount)
    assert np.any(float_l1.params["reset_amount"]) == (reset == "subtract_delayed")


# ------------------------------------------------------------------ API, CLI, errors
def test_api_and_cli_dispatch_to_lava(tmp_path) -> None:
    from slt_deploy.cli import app

    ticket = mlp_ticket()
    x = np.random.default_rng(8).random((2, 12)).astype(np.float32)
    via_api = slt.api.run(ticket, x, target="lava")
    np.testing.assert_array_equal(via_api.output, simulate_fixed(ticket, x).output)
    slt.save(ticket, tmp_path / "t.slt")
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(app, ["run", str(tmp_path / "t.slt"), "-i", str(tmp_path / "x.npy"),
                                   "--target", "lava-float", "--json", "-o", str(tmp_path / "out.npz")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["target"] == "lava-float" and doc["output_shape"] == [8, 2, 4]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["spikes"], simulate(ticket, x).output)
    assert lava_target.semantics(ticket) == ({"fixed-point", "float32-exact"}, [lava_target.conversion_report(ticket)
                                                                     ["delay_note"]])


def test_bad_options_and_unsupported_tickets_fail_cleanly() -> None:
    ticket = mlp_ticket()
    x = np.zeros((1, 12), np.float32)
    with pytest.raises(SltInputError, match="mode"):
        lava_target.run(ticket, x, mode="analog")
    with pytest.raises(SltInputError, match="synapse"):
        lava_target.run(ticket, x, synapse="conv3d")
    with pytest.raises(SltInputError, match="unknown option"):
        lava_target.run(ticket, x, dtype=np.float32)
    bad = sequential((12,), [Linear("fc", binary(np.random.default_rng(0), (2, 12), 0.5)),
                             LIF("l", (2,), threshold=-0.5)], 2, Encoding("rate", seed=1))
    with pytest.raises(SltUnsupportedError, match="node 'l'"):
        lava_target.run(bad, x)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(ticket_and_input(families=("mlp", "conv", "residual", "recurrent")))
def test_lava_fixed_pt_equals_the_fixed_reference_on_any_accepted_ticket(case) -> None:
    ticket, x = case
    try:
        to_fixed(ticket, x)
    except SltUnsupportedError:
        return
    check_fixed(ticket, x)
