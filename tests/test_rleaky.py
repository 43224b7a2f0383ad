"""snnTorch RLeaky imports exactly as the IR's recurrent LIF (RLIF): the recurrent current is
added after the leak, ``((β·m + I) + rec(spk[t−1])) − R·θ``, in snnTorch's own order.

Networks with one and two recurrent layers, subtract / zero / no reset, all-to-all (nn.Linear,
bias included) and one-to-one (V) recurrence, learned and fixed recurrent weights, pruned
recurrent weights, per-neuron heterogeneous β (gamma-distributed time constants, β = exp(−1/τ),
float32, so β·m is not dyadic and the operation order matters) and thresholds: the reference
fires snnTorch's spikes at every step and neuron. Synaptic weights are dyadic (k/8) so torch's
float32 sums are exact, as in tests/test_importers.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune

snn = pytest.importorskip("snntorch")

from test_importers import check_exact, dyadic_, graded, spikes  # noqa: E402

from slt_deploy.errors import SltUnsupportedError  # noqa: E402
from slt_deploy.importers.torch import import_module  # noqa: E402
from slt_deploy.ir import RLIF  # noqa: E402
from slt_deploy.reference import simulate  # noqa: E402


def hetero_beta(n: int, seed: int) -> torch.Tensor:
    """Per-neuron β = exp(−1/τ), τ ~ Gamma(k=3, θ=4) steps (the HRSNN's heterogeneous time constants)."""
    tau = np.random.default_rng(seed).gamma(3.0, 4.0, n) + 1.0
    return torch.from_numpy(np.exp(-1.0 / tau).astype(np.float32))


def rleaky(n: int, reset: str, seed: int, all_to_all: bool = True, **kw) -> nn.Module:
    theta = torch.from_numpy(np.random.default_rng(seed + 1).uniform(0.5, 1.5, n).astype(np.float32))
    extra = {"linear_features": n} if all_to_all else {"V": torch.from_numpy(
        (np.random.default_rng(seed + 2).integers(-8, 9, n) / 8).astype(np.float32))}
    return snn.RLeaky(beta=hetero_beta(n, seed), threshold=theta, reset_mechanism=reset, init_hidden=True,
                      all_to_all=all_to_all, **extra, **kw)


def net(reset: str, layers: int = 1, all_to_all: bool = True, **kw) -> nn.Module:
    mods: list[nn.Module] = [nn.Linear(6, 10)]
    for i in range(layers):
        mods.append(rleaky(10, reset, 30 + i, all_to_all, **kw))
        mods.append(nn.Linear(10, 10 if i + 1 < layers else 4))
    mods.append(snn.Leaky(beta=0.75, init_hidden=True, output=True))
    return dyadic_(nn.Sequential(*mods), seed=18)


def rlif_nodes(ticket) -> list[RLIF]:
    return [n for n in ticket.nodes if isinstance(n, RLIF)]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("layers", [1, 2])
def test_rleaky_all_to_all_exact(reset: str, layers: int) -> None:
    model = net(reset, layers)
    ticket, _ = check_exact(model, graded((8, 6), 19), steps=30)
    nodes = rlif_nodes(ticket)
    assert len(nodes) == layers
    want = {"subtract": "subtract_delayed", "zero": "zero_delayed", "none": "none"}[reset]
    assert all(n.reset == want for n in nodes)
    assert len(np.unique(nodes[0].beta)) == 10  # heterogeneous, per neuron
    for n in nodes:
        ff, rec = ticket.inputs_of(n.name)
        assert not ff.recurrent and not rec.recurrent
        assert [e.recurrent for e in ticket.inputs_of(rec.src)] == [True]
        assert ticket.node(rec.src).bias is not None  # nn.Linear's bias is part of the recurrent current


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_rleaky_one_to_one_exact(reset: str) -> None:
    ticket, _ = check_exact(net(reset, 2, all_to_all=False), spikes((8, 6), 20), steps=30)
    rec = ticket.node(ticket.inputs_of(rlif_nodes(ticket)[0].name)[1].src).weights
    assert not np.any(rec.mask & ~np.eye(10, dtype=bool))


def test_rleaky_fixed_and_pruned_recurrent_weights_exact() -> None:
    model = net("subtract", 2, learn_recurrent=False)
    assert not any(p.requires_grad for p in model[1].recurrent.parameters())
    prune.random_unstructured(model[3].recurrent, "weight", amount=0.6)
    ticket, _ = check_exact(model, graded((8, 6), 21), steps=30)
    masks = [ticket.node(ticket.inputs_of(n.name)[1].src).weights.mask for n in rlif_nodes(ticket)]
    assert masks[0].sum() > 80 and masks[1].sum() <= 40  # 60% of the second layer's recurrent synapses pruned


def test_rleaky_reassociated_form_is_not_the_same() -> None:
    """Adding (I + rec) before the leak, the IR's Add-then-LIF form, changes the membranes: β·m + (I + rec)
    and (β·m + I) + rec round differently for non-dyadic β, so the import needs the RLIF form."""
    from slt_deploy.numerics import NUMPY, NeuronConstants, neuron_step

    node = rlif_nodes(import_module(net("subtract"), input_shape=(6,), timesteps=4))[0]
    c = NeuronConstants.of(node, lambda a: a, np.float32(0))
    rng = np.random.default_rng(0)
    v = rng.standard_normal((64, 10)).astype(np.float32)
    u = rng.standard_normal((64, 10)).astype(np.float32)
    r = rng.standard_normal((64, 10)).astype(np.float32)
    s = np.zeros_like(v)
    exact, _ = neuron_step(NUMPY, c, v, s, u, r)
    snntorch_order = (c.beta * v + u) + r
    reassociated, _ = neuron_step(NUMPY, c, v, s, u + r)
    assert np.array_equal(exact, snntorch_order)
    assert not np.array_equal(exact, reassociated)


def test_rleaky_reset_delay_false_refused() -> None:
    with pytest.raises(SltUnsupportedError, match="reset_delay=False"):
        import_module(net("subtract", reset_delay=False), input_shape=(6,))


def test_rlif_round_trips_through_slt(tmp_path) -> None:
    import slt_deploy
    from slt_deploy.ir import tickets_equal

    ticket = import_module(net("zero", 2), input_shape=(6,), timesteps=10)
    path = tmp_path / "r.slt"
    slt_deploy.save(ticket, path)
    back = slt_deploy.load(path)
    assert tickets_equal(ticket, back)
    x = graded((4, 6), 3).numpy()
    assert np.array_equal(simulate(ticket, x).output, simulate(back, x).output)


@pytest.mark.parametrize("reset", ["subtract", "none"])
def test_rleaky_on_lava_fixed_point_equals_the_fixed_reference(reset: str) -> None:
    """Loihi sums both currents in integers (order-free): an RLIF is planned as a LIF fed by both inputs,
    the recurrent synapses run over Lava's one-step connection delay."""
    pytest.importorskip("lava")
    import slt_deploy as slt

    x = spikes((12, 3, 6), 5).numpy()
    ticket = import_module(net(reset, 2), x[0], timesteps=12, encoding="spikes")
    expected = slt.run(ticket, x, target="fixed-reference")
    got = slt.run(ticket, x, target="lava")
    np.testing.assert_array_equal(got.output, expected.output)
    for name, counts in expected.spike_counts.items():
        np.testing.assert_array_equal(got.spike_counts[name], counts, err_msg=name)
    assert sum(int(c.sum()) for c in expected.spike_counts.values()) > 0


def test_rleaky_zero_reset_refused_by_loihi_naming_it() -> None:
    import slt_deploy as slt

    x = spikes((4, 2, 6), 5).numpy()
    ticket = import_module(net("zero"), x[0], timesteps=4, encoding="spikes")
    with pytest.raises(SltUnsupportedError, match="node '1'.*zero_delayed"):
        slt.run(ticket, x, target="fixed-reference")


def test_rlif_to_nir_is_a_named_refusal_and_round_trips_when_allowed(tmp_path) -> None:
    """NIR sums a neuron's inputs before the leak and snnTorch reads the cycle as RLeaky(reset_delay=False, zero
    reset): not exact, so refused by name; written anyway, slt's own reader restores the ticket exactly."""
    pytest.importorskip("nir")
    import slt_deploy as slt
    from slt_deploy.ir import tickets_equal

    x = spikes((6, 2, 6), 7).numpy()
    ticket = import_module(net("subtract", 2), x[0], timesteps=6, encoding="spikes")
    with pytest.raises(SltUnsupportedError, match=r"node '1' \(rlif\).*\(beta\*v \+ I\) \+ rec"):
        slt.export(ticket, tmp_path / "r.nir", to="nir")
    report = slt.export(ticket, tmp_path / "r.nir", to="nir", allow_approximate=True)
    assert not report["exact"]
    from slt_deploy.api import load_any

    back = load_any(tmp_path / "r.nir")
    assert tickets_equal(ticket, back)
    np.testing.assert_array_equal(slt.run(back, x).output, slt.run(ticket, x).output)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_rleaky_import_runs_exactly_on_every_float32_target(reset: str) -> None:
    """The imported recurrent ticket (2 RLIF layers, per-neuron β) fires the reference's spikes, every layer and
    step, on cpu, torch and onnxruntime (graded input, spike-train encoding)."""
    import slt_deploy as slt
    from slt_deploy.registry import exact_targets

    x = graded((20, 4, 6), 11).numpy()
    ticket = import_module(net(reset, 2), x[0], timesteps=20, encoding="spikes")
    ref = simulate(ticket, x, record=True)
    for target in exact_targets():
        got = slt.run(ticket, x, target=target, record=True)
        for name in ref.spike_counts:
            np.testing.assert_array_equal(got.layers[name], ref.layers[name], err_msg=f"{target} {name}")
        np.testing.assert_array_equal(got.output, ref.output, err_msg=target)


# ------------------------------------------------------------------ SpikingJelly's recurrent container
@pytest.mark.parametrize("decay_input", [True, False])
def test_spikingjelly_linear_recurrent_container_exact(decay_input: bool) -> None:
    """``y = LIFNode(rc(cat(x, y[t-1])))``: imported as Linear(W_x, b) -> Add <- Linear(W_y) <-recurrent- LIF."""
    sj = pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional, layer, neuron

    cont = layer.LinearRecurrentContainer(neuron.LIFNode(tau=2.0, decay_input=decay_input), 8, 8)
    model = dyadic_(nn.Sequential(nn.Linear(6, 8), cont, nn.Linear(8, 4), neuron.LIFNode(tau=2.0)), seed=23)
    functional.reset_net(model)
    ticket, _ = check_exact(model, graded((8, 6), 24), steps=20)
    assert [(e.src, e.dst) for e in ticket.edges if e.recurrent] == [("1.sub_module", "1.rc.y")]
    assert sj is not None


def test_spikingjelly_element_wise_container_refused() -> None:
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import layer, neuron

    cont = layer.ElementWiseRecurrentContainer(neuron.LIFNode(), element_wise_function=lambda y, x: x + y)
    with pytest.raises(SltUnsupportedError, match="element-wise recurrent function"):
        import_module(nn.Sequential(nn.Linear(6, 8), cont), input_shape=(6,))
