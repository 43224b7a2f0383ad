"""The energy model: exact counts against brute force, published MAC figures, hand-worked
energies, profiles, reports, and one-line errors.

Oracles: a Python loop over every weight and every recorded input value (brute force);
published dense MAC / connection counts (VGG16 on CIFAR, LeNet-5 of LeCun et al. 1998);
energies worked out by hand from the profile constants.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from slt_deploy.energy import BUILTIN, CONVENTIONS, count_run, dense_macs, energy, kept_macs, load_profile
from slt_deploy.energy.counting import first_layers
from slt_deploy.errors import SltEnergyError, SltError, SltInputError, SltProfileError
from slt_deploy.ir import (
    LI,
    LIF,
    Add,
    AvgPool2d,
    BinaryWeights,
    Conv2d,
    Edge,
    Encoding,
    Flatten,
    FloatWeights,
    Input,
    Int8Weights,
    Linear,
    MaxPool2d,
    Output,
    SumPool2d,
    Ticket,
    binarize,
    sequential,
)
from slt_deploy.reference import simulate

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- builders
def _weights(rng: np.random.Generator, shape: tuple[int, ...], density: float, kind: str = "binary"):
    w = rng.normal(size=shape).astype(np.float32)
    mask = rng.random(shape) < density
    if kind == "binary":
        return binarize(w, mask)
    if kind == "int8":
        return Int8Weights(mask, np.clip(np.round(w * 40), -128, 127).astype(np.int8), np.full(shape[0], 0.02))
    return FloatWeights(mask, w)


def _chain(layers: list, input_shape: tuple[int, ...], T: int, encoding: Encoding = Encoding()) -> Ticket:
    return sequential(input_shape, layers, T, encoding)


def mlp(rng: np.random.Generator, kind: str = "binary", T: int = 4) -> Ticket:
    return _chain([
        Linear("fc1", _weights(rng, (12, 7), 0.5, kind)), LIF("lif1", shape=(12,), beta=0.9, threshold=0.4),
        Linear("fc2", _weights(rng, (5, 12), 0.4, kind)), LIF("lif2", shape=(5,), threshold=0.3),
    ], (7,), T)


def conv_net(rng: np.random.Generator, stride: int, padding: int, dilation: int, groups: int,
             pool: type | None = None) -> Ticket:
    c1 = Conv2d("conv1", _weights(rng, (4, 2 // groups if groups <= 2 else 1, 3, 3), 0.6), stride=stride,
                padding=padding, dilation=dilation, groups=min(groups, 2))
    probe = _chain([c1], (2, 7, 7), 1)
    shape1 = probe.shapes["conv1"]
    layers = [c1, LIF("lif1", shape=shape1, beta=0.8, threshold=0.3)]
    shape = shape1
    if pool is not None:
        layers.append(pool("pool", kernel_size=2, stride=1))
        shape = (shape[0], shape[1] - 1, shape[2] - 1)
    layers += [
        Conv2d("conv2", _weights(rng, (4, 4 // groups, 2, 2), 0.5), padding=1, groups=groups),
    ]
    probe = _chain(layers, (2, 7, 7), 1)
    shape2 = probe.shapes["conv2"]
    layers += [LIF("lif2", shape=shape2, threshold=0.2), Flatten("flat"),
               Linear("fc", _weights(rng, (3, int(np.prod(shape2))), 0.5)), LI("out", shape=(3,), beta=0.5)]
    return _chain(layers, (2, 7, 7), 3)


def residual_net(rng: np.random.Generator) -> Ticket:
    nodes = [
        Input("input", shape=(2, 5, 5)),
        Conv2d("conv1", _weights(rng, (3, 2, 3, 3), 0.7), padding=1), LIF("lif1", shape=(3, 5, 5), threshold=0.2),
        Conv2d("conv2", _weights(rng, (3, 3, 3, 3), 0.6), padding=1), LIF("lif2", shape=(3, 5, 5), threshold=0.2),
        Add("add"),
        Conv2d("conv3", _weights(rng, (2, 3, 1, 1), 0.9)), LIF("lif3", shape=(2, 5, 5), threshold=0.2),
        Output("output"),
    ]
    edges = [Edge("input", "conv1"), Edge("conv1", "lif1"), Edge("lif1", "conv2"), Edge("conv2", "lif2"),
             Edge("lif1", "add"), Edge("lif2", "add"), Edge("add", "conv3"), Edge("conv3", "lif3"),
             Edge("lif3", "output")]
    return Ticket(nodes, edges, 4)


def recurrent_net(rng: np.random.Generator, encoding: Encoding = Encoding()) -> Ticket:
    nodes = [
        Input("input", shape=(6,)),
        Linear("fc_in", _weights(rng, (8, 6), 0.6, "float32")), Add("add"),
        LIF("lif", shape=(8,), beta=0.9, threshold=0.3), Linear("fc_rec", _weights(rng, (8, 8), 0.5, "int8")),
        Linear("fc_out", _weights(rng, (3, 8), 0.7)), LIF("lif_out", shape=(3,), threshold=0.2), Output("output"),
    ]
    edges = [Edge("input", "fc_in"), Edge("fc_in", "add"), Edge("fc_rec", "add"), Edge("add", "lif"),
             Edge("lif", "fc_rec", recurrent=True), Edge("lif", "fc_out"), Edge("fc_out", "lif_out"),
             Edge("lif_out", "output")]
    return Ticket(nodes, edges, 5, encoding)


# ----------------------------------------------------------------------------- brute force
def brute_force(ticket: Ticket, result) -> dict[str, tuple[int, int, int]]:
    """Per synapse layer: (AC, MAC, dense effective ops) by looping over every weight and input value."""
    out = {}
    for node in ticket.synapse_layers():
        (edge,) = ticket.inputs_of(node.name)
        rec = result.layers[edge.src]
        T, B = rec.shape[:2]
        mask = node.weights.mask
        ac = mac = dense = 0
        for t in range(T):
            for b in range(B):
                if edge.recurrent:
                    x = np.zeros_like(rec[0, b]) if t == 0 else rec[t - 1, b]
                else:
                    x = rec[t, b]
                binary = all(float(v) in (-1.0, 0.0, 1.0) for v in x.reshape(-1))
                eff = full = 0
                if isinstance(node, Linear):
                    for o in range(mask.shape[0]):
                        for i in range(mask.shape[1]):
                            if x[i] != 0:
                                full += 1
                                eff += int(mask[o, i])
                else:
                    eff, full = _conv_brute(node, mask, x, ticket.shapes[node.name])
                if binary:
                    ac += eff
                else:
                    mac += eff
                dense += full
        out[node.name] = (ac, mac, dense)
    return out


def _conv_brute(node: Conv2d, mask: np.ndarray, x: np.ndarray, out_shape: tuple[int, ...]) -> tuple[int, int]:
    c_out, c_in_g, kh, kw = mask.shape
    (sh, sw), (ph, pw), (dh, dw), g = node.stride, node.padding, node.dilation, node.groups
    _, H, W = x.shape
    eff = full = 0
    for o in range(c_out):
        group = o // (c_out // g)
        for i in range(out_shape[1]):
            for j in range(out_shape[2]):
                for c in range(c_in_g):
                    for ki in range(kh):
                        for kj in range(kw):
                            r, q = i * sh + ki * dh - ph, j * sw + kj * dw - pw
                            if 0 <= r < H and 0 <= q < W and x[group * c_in_g + c, r, q] != 0:
                                full += 1
                                eff += int(mask[o, c, ki, kj])
    return eff, full


def assert_counts_exact(ticket: Ticket, x: np.ndarray) -> None:
    result = simulate(ticket, x, record=True)
    counts = count_run(ticket, result)
    expected = brute_force(ticket, result)
    for s in counts.synapses:
        assert (s.ac, s.mac, int(s.dense_effective.sum())) == expected[s.name], s.name


# ----------------------------------------------------------------------------- exact counting
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["binary", "int8", "float32"])
def test_mlp_counts_match_brute_force(seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    ticket = mlp(rng, kind)
    assert_counts_exact(ticket, rng.random((3, 7)))


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (2, 2, 2, 2), (1, 1, 1, 2), (1, 1, 1, 4),
])
def test_conv_counts_match_brute_force(stride: int, padding: int, dilation: int, groups: int) -> None:
    rng = np.random.default_rng(10 * stride + padding + 7 * groups)
    ticket = conv_net(rng, stride, padding, dilation, groups)
    assert_counts_exact(ticket, rng.random((2, 2, 7, 7)) * (rng.random((2, 2, 7, 7)) < 0.7))


@pytest.mark.parametrize("pool", [AvgPool2d, MaxPool2d, SumPool2d])
def test_pooled_counts_match_brute_force_and_classify(pool: type) -> None:
    rng = np.random.default_rng(3)
    ticket = conv_net(rng, 1, 1, 1, 1, pool=pool)
    x = rng.random((2, 2, 7, 7))
    assert_counts_exact(ticket, x)
    counts = count_run(ticket, simulate(ticket, x))
    conv2 = counts.synapse("conv2")
    if pool is MaxPool2d:  # max of spikes is a spike: accumulates only
        assert conv2.mac == 0 and conv2.ac > 0
    else:  # averaged or summed spikes are multi-bit wherever a window holds 1 < k < 4 spikes
        assert conv2.mac > 0


def test_residual_counts_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    ticket = residual_net(rng)
    x = rng.random((3, 2, 5, 5))
    assert_counts_exact(ticket, x)
    counts = count_run(ticket, simulate(ticket, x))
    add = simulate(ticket, x).layers["add"]
    # conv3 sees spikes summed over two branches: a call is a MAC exactly when it holds a 2
    expect_mac = (add.reshape(add.shape[0], add.shape[1], -1) == 2).any(axis=2)
    np.testing.assert_array_equal(~counts.synapse("conv3").binary, expect_mac)


@pytest.mark.parametrize("encoding", [Encoding(), Encoding("rate", seed=5)])
def test_recurrent_counts_match_brute_force(encoding: Encoding) -> None:
    rng = np.random.default_rng(5)
    ticket = recurrent_net(rng, encoding)
    x = rng.random((3, 6))
    assert_counts_exact(ticket, x)
    counts = count_run(ticket, simulate(ticket, x))
    rec = counts.synapse("fc_rec")
    assert rec.effective[0].sum() == 0  # the recurrent input is zero at t = 0
    if encoding.kind == "rate":  # rate-coded input spikes: the first layer accumulates only
        assert counts.synapse("fc_in").mac == 0


def test_graded_spike_input_is_mac_per_call() -> None:
    # Linear 2->2, mask [[1, 0], [1, 1]] (column fan-out 2 and 1); spike input per step:
    # t0 [1, 0] -> 2 ops AC; t1 [1, 1] -> 3 ops AC; t2 [0.5, 0] -> 2 ops MAC; t3 [0, -1] -> 1 op AC
    w = FloatWeights(np.array([[1, 0], [1, 1]], bool), np.array([[0.5, 0], [0.25, -0.5]], np.float32))
    ticket = _chain([Linear("fc", w), LIF("lif", shape=(2,))], (2,), 4, Encoding("spikes"))
    x = np.array([[[1, 0]], [[1, 1]], [[0.5, 0]], [[0, -1]]], np.float64)
    counts = count_run(ticket, simulate(ticket, x))
    fc = counts.synapse("fc")
    assert (fc.ac, fc.mac) == (6, 2)
    assert fc.dense_effective.reshape(-1).tolist() == [2, 4, 2, 2]
    # neurobench, cmos45-fp32: E = 0.9 * 6 + 4.6 * 2 = 14.6 pJ
    report = energy(ticket, x, convention="neurobench")
    assert report.total() == pytest.approx(0.9 * 6 + 4.6 * 2)


# ----------------------------------------------------------------------------- dense MACs
def vgg16_cifar() -> Ticket:
    """VGG16 for 3x32x32 input: 13 conv 3x3 pad 1 with 2x2 max pools, Linear(512, 10), random masks."""
    rng = np.random.default_rng(0)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list = []
    c, hw = 3, 32
    for i, v in enumerate(cfg):
        if v == "M":
            layers.append(MaxPool2d(f"pool{i}", kernel_size=2))
            hw //= 2
            continue
        shape = (v, c, 3, 3)
        mask = rng.random(shape, dtype=np.float32) < 0.1
        signs = rng.random(shape, dtype=np.float32) < 0.5
        layers += [Conv2d(f"conv{i}", BinaryWeights(mask, signs, rng.random(v) + 0.5), padding=1),
                   LIF(f"lif{i}", shape=(v, hw, hw))]
        c = v
    mask = rng.random((10, 512)) < 0.1
    layers += [Flatten("flat"), Linear("fc", BinaryWeights(mask, rng.random((10, 512)) < 0.5, 1.0))]
    return _chain(layers, (3, 32, 32), 5)


def test_vgg16_cifar_dense_macs_match_published() -> None:
    ticket = vgg16_cifar()
    macs = dense_macs(ticket)  # from shapes alone: no forward run
    assert sum(macs.values()) == 313_201_664
    weights = sum(n.weights.mask.size for n in ticket.synapse_layers())
    assert weights == 14_715_584  # "14.7 M" (biases not counted)
    assert macs["conv0"] == 3 * 64 * 9 * 32 * 32 and macs["fc"] == 5120
    kept = kept_macs(ticket)
    assert all(kept[n] <= macs[n] for n in macs)


# LeNet-5 C3 connection table (LeCun et al. 1998, Table I): S2 maps feeding each C3 map.
C3_TABLE = [[i % 6, (i + 1) % 6, (i + 2) % 6] for i in range(6)] + \
           [[i % 6, (i + 1) % 6, (i + 2) % 6, (i + 3) % 6] for i in range(6)] + \
           [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], list(range(6))]


def lenet5(connection_table: bool) -> Ticket:
    def conv(name: str, c_out: int, c_in: int, mask: np.ndarray | None = None) -> Conv2d:
        m = np.ones((c_out, c_in, 5, 5), bool) if mask is None else mask
        return Conv2d(name, BinaryWeights(m, np.zeros(m.shape, bool), 1.0), bias=np.zeros(c_out))

    c3_mask = np.zeros((16, 6, 5, 5), bool)
    for o, srcs in enumerate(C3_TABLE):
        c3_mask[o, srcs] = True

    def fc(name: str, o: int, i: int) -> Linear:
        return Linear(name, BinaryWeights(np.ones((o, i), bool), np.zeros((o, i), bool), 1.0), bias=np.zeros(o))

    return _chain([
        conv("c1", 6, 1), LIF("l1", shape=(6, 28, 28)), AvgPool2d("s2"),
        conv("c3", 16, 6, c3_mask if connection_table else None), LIF("l3", shape=(16, 10, 10)), AvgPool2d("s4"),
        conv("c5", 120, 16), LIF("l5", shape=(120, 1, 1)), Flatten("flat"),
        fc("f6", 84, 120), LIF("l6", shape=(84,)), fc("out", 10, 84), LI("li", shape=(10,)),
    ], (1, 32, 32), 2)


def test_lenet5_macs_and_connections() -> None:
    # Modern LeNet-5 (full C3): 117,600 + 240,000 + 48,000 + 10,080 + 840 = 416,520 MACs
    macs = dense_macs(lenet5(connection_table=False))
    assert macs == {"c1": 117_600, "c3": 240_000, "c5": 48_000, "f6": 10_080, "out": 840}
    assert sum(macs.values()) == 416_520
    # LeCun et al. 1998 count "connections" including one bias per output: C1 122,304, C3 151,600,
    # C5 48,120, F6 10,164. Our kept MACs (C3 with its connection table as a mask) + biases match.
    ticket = lenet5(connection_table=True)
    kept = kept_macs(ticket)
    biases = {"c1": 6 * 28 * 28, "c3": 16 * 10 * 10, "c5": 120, "f6": 84}
    assert {k: kept[k] + biases[k] for k in biases} == {"c1": 122_304, "c3": 151_600, "c5": 48_120, "f6": 10_164}
    assert int(ticket.node("c3").weights.mask.sum()) + 16 == 1516  # C3 trainable parameters


def test_mlp_dense_macs_by_hand() -> None:
    # 784-100-10: 784*100 + 100*10 = 78,400 + 1,000 = 79,400 MACs per pass
    rng = np.random.default_rng(0)
    ticket = _chain([Linear("a", _weights(rng, (100, 784), 0.1)), LIF("la", shape=(100,)),
                     Linear("b", _weights(rng, (10, 100), 0.1)), LIF("lb", shape=(10,))], (784,), 3)
    assert dense_macs(ticket) == {"a": 78_400, "b": 1_000}
    assert kept_macs(ticket)["a"] == int(ticket.node("a").weights.mask.sum())


def test_first_layers_cross_no_neuron() -> None:
    rng = np.random.default_rng(0)
    ticket = conv_net(rng, 1, 1, 1, 1, pool=AvgPool2d)
    assert first_layers(ticket) == {"conv1"}
    t2 = _chain([Flatten("f"), Linear("fc", _weights(rng, (3, 4), 1.0)), LIF("l", shape=(3,))], (1, 2, 2), 2)
    assert first_layers(t2) == {"fc"}


# ----------------------------------------------------------------------------- energies and baselines
def small_ticket(kind: str = "binary") -> tuple[Ticket, np.ndarray]:
    rng = np.random.default_rng(7)
    return mlp(rng, kind, T=6), rng.random((5, 7))


def test_neurobench_energy_by_hand_and_ann_baseline() -> None:
    ticket, x = small_ticket()
    r = energy(ticket, x)
    counts = r.counts
    ac = sum(s.ac for s in counts.synapses) / counts.batch
    mac = sum(s.mac for s in counts.synapses) / counts.batch
    assert (r.effective_ac, r.effective_mac) == (pytest.approx(ac), pytest.approx(mac))
    assert r.total() == pytest.approx(0.9 * ac + 4.6 * mac)
    # ANN, dense upper bound: 12*7 + 5*12 = 144 MACs, priced at E_MAC; one pass
    assert r.total("ann-dense") == pytest.approx(4.6 * 144)
    # ANN, effective (estimated): the first layer sees every input value nonzero (rng.random > 0):
    # 7 * 12 = 84 MACs; the hidden layer 60 MACs at the assumed sparsity 0.5: 30; 114 MACs in all
    assert r.variant("ann").mac == pytest.approx(84 + 30)
    assert r.total("ann") == pytest.approx(4.6 * 114)
    s = {v.baseline: v for v in r.savings()}
    assert s["ann"].ratio == pytest.approx(r.total("ann") / r.total())
    assert "E[ann] / E[ticket]" in s["ann"].formula
    # without a dense model the dense SNN's activity is assumed, and labelled so
    assert r.variant("dense-snn").activity.startswith("assumed")
    dense_ops = sum(s.dense_ac + s.dense_mac for s in counts.synapses) / counts.batch
    assert r.variant("dense-snn").ac + r.variant("dense-snn").mac == pytest.approx(dense_ops)


def test_spikformer_energy_by_hand() -> None:
    ticket, x = small_ticket()
    r = energy(ticket, x, convention="spikformer")
    c = r.counts
    fc1, fc2 = c.synapse("fc1"), c.synapse("fc2")
    fr2 = fc2.nonzero_t.sum() / (6 * 5 * 12)
    # E = E_MAC * FLOPs(fc1, kept) + E_AC * fr * T * FLOPs(fc2, kept)
    expect = 4.6 * fc1.kept_macs + 0.9 * fr2 * 6 * fc2.kept_macs
    assert r.total() == pytest.approx(expect)
    assert r.total("ann-dense") == pytest.approx(4.6 * (12 * 7 + 5 * 12))


def test_memory_aware_adds_neurons_and_memory() -> None:
    ticket, x = small_ticket()
    nb = energy(ticket, x, convention="neurobench")
    ma = energy(ticket, x, convention="memory-aware")
    comp = ma.breakdown(ma.ticket.key)
    assert ma.total() == pytest.approx(nb.total() + comp.neuron + comp.memory)
    # neuron updates: 5.5 pJ per neuron per step on cmos45-fp32 (12 + 5 neurons, T = 6)
    assert comp.neuron == pytest.approx(5.5 * 17 * 6)
    # fc1 weights: packed bytes read once per step from an 8 KB SRAM (10 pJ per 64 bits)
    nbytes = ma.packed["fc1"][0]
    assert ma.energies["memory-aware"][ma.ticket.key]["fc1"].memory == pytest.approx(6 * -(-nbytes // 8) * 10.0)
    # binary weights need fewer bytes than fp32 ones: the memory-aware saving shows it
    assert ma.total("sparse-fp32") > ma.total()
    assert nb.total("sparse-fp32") == pytest.approx(nb.total())


def test_loihi_neuron_updates_active_inactive() -> None:
    ticket, x = small_ticket()
    r = energy(ticket, x, profile="loihi", convention="memory-aware")
    spikes = sum(n.spikes for n in r.counts.neurons) / r.counts.batch
    updates = 17 * 6
    comp = r.breakdown(r.ticket.key)
    assert comp.neuron == pytest.approx(81 * spikes + 52 * (updates - spikes))
    assert comp.memory == pytest.approx(1.7 * spikes)  # no memory levels; spikes sent at 1.7 pJ
    ops = r.effective_ac + r.effective_mac
    assert comp.ac + comp.mac == pytest.approx(23.6 * ops)


def test_dense_model_measured_and_mismatch() -> None:
    ticket, x = small_ticket()
    dense = Ticket([n if not isinstance(n, Linear) else Linear(n.name, FloatWeights(
        np.ones_like(n.weights.mask), np.where(n.weights.mask, 0.3, -0.2))) for n in ticket.nodes],
        ticket.edges, ticket.timesteps)
    r = energy(ticket, x, dense_model=dense)
    assert r.variant("dense-snn").activity.startswith("measured")
    dense_counts = count_run(dense, simulate(dense, x))
    assert r.variant("dense-snn").ac + r.variant("dense-snn").mac == pytest.approx(
        sum(int(s.effective.sum()) for s in dense_counts.synapses) / 5)
    other = mlp(np.random.default_rng(1), T=3)
    with pytest.raises(SltEnergyError, match="T=3"):
        energy(ticket, x, dense_model=other)


def test_variants_for_each_weight_kind() -> None:
    for kind, ticket_key in (("binary", "sparse-binary"), ("float32", "sparse-fp32"), ("int8", "ticket")):
        ticket, x = small_ticket(kind)
        r = energy(ticket, x)
        assert r.ticket.key == ticket_key
        keys = [v.key for v in r.variants]
        assert keys[:5] == ["ann-dense", "ann", "dense-snn", "sparse-fp32", "sparse-binary"]


def test_report_states_counts_profiles_and_savings() -> None:
    ticket, x = small_ticket()
    r = energy(ticket, x, convention="memory-aware")
    d = json.loads(r.to_json())
    assert d["schema"] == "slt-energy/2"
    assert d["convention"]["name"] == "memory-aware" and d["convention"]["formula"]
    assert [v["view"] for v in d["views"]] == ["compute-only", "memory-aware"]
    assert d["per_inference"]["effective_ac"] == pytest.approx(r.effective_ac)
    assert d["per_inference"]["effective_mac"] == pytest.approx(r.effective_mac)
    assert set(d["by_profile"]) == set(BUILTIN)
    assert {s["baseline"] for s in d["savings"]} >= {"ann", "dense-snn"}
    assert all(c["source"] for c in d["profile"]["constants"].values())
    assert len(d["layers"][0]["per_step"]["effective_ac"]) == 6
    md = r.to_markdown()
    for needle in ("memory-aware", "effective ACs", "E[ann] / E[ticket]", "cmos45-int8", "loihi", "Horowitz"):
        assert needle in md


def test_html_is_self_contained_with_labelled_plots() -> None:
    pytest.importorskip("matplotlib")
    ticket, x = small_ticket()
    page = energy(ticket, x).to_html()
    assert page.count("<svg") == 5
    for needle in ("energy per inference (", "time step t", "spike rate (spikes per neuron per step)",
                   "input nonzero fraction", "fc1 linear 7→12", "lif1 lif 12", "neurobench", "memory-aware",
                   "break-even"):
        assert needle in page
    lowered = page.lower()
    for banned in ("<script", "<link", "src=\"http", "url(http", "@import"):
        assert banned not in lowered


def test_html_without_matplotlib_has_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    ticket, x = small_ticket()
    page = energy(ticket, x).to_html()
    assert "<svg" not in page and "slt-deploy[report]" in page and "<table>" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_html_renders_headless(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ticket, x = small_ticket()
    page = tmp_path / "r.html"
    page.write_text(energy(ticket, x).to_html(), encoding="utf-8")
    png = tmp_path / "r.png"
    subprocess.run([str(ROOT / "tools" / "render_html.sh"), str(page), str(png), "800x1200"], check=True,
                   capture_output=True, timeout=120)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- profiles and errors
def test_builtin_profiles_cite_sources() -> None:
    fp32 = load_profile("cmos45-fp32")
    assert (fp32.pj("mac"), fp32.pj("ac")) == (4.6, 0.9)
    assert [m.pj_per_64bit for m in fp32.memory] == [10.0, 20.0, 100.0, 1300.0]
    assert fp32.level(8192).name == "SRAM 8 KB" and fp32.level(8193).name == "SRAM 32 KB"
    assert fp32.level(10**9).max_bytes is None
    loihi = load_profile("loihi")
    assert (loihi.pj("ac"), loihi.pj("neuron_active"), loihi.pj("neuron_inactive")) == (23.6, 81.0, 52.0)
    assert (load_profile("cmos45-int8").pj("mac"), load_profile("cmos45-fp16").pj("mac"),
            load_profile("cmos45-int32").pj("mac")) == (0.23, 1.5, 3.2)
    for name in BUILTIN:
        p = load_profile(name)
        assert all(c.source for c in p.constants.values()) and all(m.source for m in p.memory)


GOOD = """
name = "mychip"
[constants.ac]
pj = 1.0
source = "datasheet p. 3"
[constants.mac]
pj = 2.0
source = "datasheet p. 3"
[constants.neuron_active]
pj = 3.0
source = "datasheet p. 4"
[constants.neuron_inactive]
pj = 1.0
source = "datasheet p. 4"
"""


def test_user_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "my.toml"
    path.write_text(GOOD)
    ticket, x = small_ticket()
    r = energy(ticket, x, profile=str(path))
    assert r.profile.name == "mychip"
    assert r.total() == pytest.approx(1.0 * r.effective_ac + 2.0 * r.effective_mac)
    assert any(k.startswith("mychip") for k in r.by_profile["neurobench"])


@pytest.mark.parametrize("text,match", [
    (GOOD.replace('[constants.mac]\npj = 2.0\nsource = "datasheet p. 3"\n', ""), "missing constant.*mac"),
    (GOOD.replace("pj = 2.0", "pj = -2.0"), "constants.mac.pj must be finite and >= 0"),
    (GOOD.replace("pj = 2.0", "pj = nan"), "finite"),
    (GOOD.replace('source = "datasheet p. 4"', 'source = ""', 1), "needs a 'source'"),
    (GOOD + "[constants.bogus]\npj = 1\nsource = 'x'\n", "unknown constant"),
    (GOOD + "[[memory]]\nmax_bytes = 10\npj_per_64bit = 1.0\nsource = 'x'\n", "last memory level"),
    ("name = [", "not valid TOML"),
])
def test_bad_profile_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SltProfileError, match=match) as info:
        load_profile(str(path))
    assert "\n" not in str(info.value)


def test_bad_names_and_shapes() -> None:
    ticket, x = small_ticket()
    with pytest.raises(SltProfileError, match="unknown energy profile 'cmos7'"):
        energy(ticket, x, profile="cmos7")
    with pytest.raises(SltProfileError, match="no such profile file"):
        energy(ticket, x, profile="missing.toml")
    with pytest.raises(SltEnergyError, match="unknown energy convention"):
        energy(ticket, x, convention="flops")
    with pytest.raises(SltInputError, match="shape"):
        energy(ticket, np.zeros((2, 8)))
    assert set(CONVENTIONS) == {"neurobench", "spikformer", "memory-aware"}


# ----------------------------------------------------------------------------- CLI
def _app():
    typer = pytest.importorskip("typer")
    from slt_deploy.cli import user_errors
    from slt_deploy.energy.command import energy as energy_command

    app = typer.Typer()
    app.command("energy")(user_errors(energy_command))
    app.command("noop")(lambda: None)  # two commands: typer keeps the sub-command name
    return app


def _saved(tmp_path: Path) -> tuple[Path, Path]:
    from slt_deploy import save

    ticket, x = small_ticket()
    try:
        save(ticket, tmp_path / "t.slt")
    except Exception as exc:  # the .slt writer is a sibling module; skip if it is not usable here
        pytest.skip(f"cannot write .slt: {exc}")
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "t.slt", tmp_path / "x.npy"


def test_cli_json_and_reports(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    slt, x = _saved(tmp_path)
    runner = CliRunner()
    res = runner.invoke(_app(), ["energy", str(slt), "--input", str(x), "--json", "--convention", "spikformer",
                                 "--report", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["schema"] == "slt-energy/2" and d["convention"]["name"] == "spikformer"
    assert "spikformer" in (tmp_path / "r.md").read_text()
    res = runner.invoke(_app(), ["energy", str(slt), "--input", str(x), "--profile", "loihi"])
    assert res.exit_code == 0, res.output
    assert "neurobench" in res.stdout and "loihi" in res.stdout


@pytest.mark.parametrize("args,needle", [
    (["--profile", "nope"], "unknown energy profile"),
    (["--convention", "nope"], "unknown energy convention"),
    (["--report", "r.pdf"], ".html or .md"),
])
def test_cli_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    from typer.testing import CliRunner

    slt, x = _saved(tmp_path)
    res = CliRunner().invoke(_app(), ["energy", str(slt), "--input", str(x), *args])
    assert res.exit_code == 2
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_bad_profile_file_and_shape_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    slt, x = _saved(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("pj = 2.0", "pj = -1"))
    runner = CliRunner()
    res = runner.invoke(_app(), ["energy", str(slt), "--input", str(x), "--profile", str(bad)])
    assert res.exit_code == 2 and "must be finite and >= 0" in res.stderr
    np.save(tmp_path / "wrong.npy", np.zeros((2, 9)))
    res = runner.invoke(_app(), ["energy", str(slt), "--input", str(tmp_path / "wrong.npy")])
    assert res.exit_code == 2 and "shape" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_error_types_are_slt_errors() -> None:
    assert issubclass(SltProfileError, SltEnergyError) and issubclass(SltEnergyError, SltError)


def test_package_is_callable_like_the_api_function() -> None:
    import slt_deploy
    import slt_deploy.energy as package
    import slt_deploy.energy.counting  # noqa: F401  (a submodule import rebinds slt_deploy.energy)

    ticket, x = small_ticket()
    assert package(ticket, x).total() == pytest.approx(energy(ticket, x).total())
    assert slt_deploy.energy(ticket, x, convention="spikformer").convention.name == "spikformer"
