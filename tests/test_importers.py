"""Importers: the imported ticket, run on the float32 reference, fires exactly the spikes the
source framework fires when stepped in torch float32 (every step, every neuron).

Exactness needs the synaptic sums to be exact in both (the reference sums in float64 and
rounds once, torch accumulates in float32 in its own order), so weights, biases and inputs
are dyadic rationals with few bits. Neuron arithmetic (β·v, /τ, resets) is not restricted:
both sides perform the same float32 operations. Inputs hit exact ties v == θ, and a
"mutant" ticket with thresholds moved by one ulp fires differently, which shows that the
comparison direction (> versus >=) is exercised.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn.utils import prune

snn = pytest.importorskip("snntorch")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

import slt_deploy  # noqa: E402
from slt_deploy.errors import SltImportError, SltUnsupportedError  # noqa: E402
from slt_deploy.importers.torch import build_from_arch, import_module, load_checkpoint  # noqa: E402
from slt_deploy.ir import LIF, BinaryWeights, FloatWeights, Ticket, tickets_equal  # noqa: E402
from slt_deploy.reference import simulate  # noqa: E402

T = 12


# ====================================================================== helpers
def dyadic_(model: nn.Module, seed: int, lo: int = -8, hi: int = 8, bits: int = 3) -> nn.Module:
    """Set every Linear/Conv2d weight and bias to k / 2**bits, k in [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.copy_(torch.randint(lo, hi + 1, m.weight.shape, generator=g).float() / 2**bits)
                if m.bias is not None:
                    m.bias.copy_(torch.randint(lo, hi + 1, m.bias.shape, generator=g).float() / 2**bits)
    return model


def spikes(shape: tuple[int, ...], seed: int, p: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def graded(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-16, 17, shape, generator=g).float() / 16


def is_neuron(m: nn.Module) -> bool:
    return isinstance(m, (snn.Leaky, snn.RLeaky, sj_neuron.LIFNode, sj_neuron.IFNode))


def reset_state(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (snn.Leaky, snn.RLeaky)):
            m.reset_mem()
        elif isinstance(m, (sj_neuron.LIFNode, sj_neuron.IFNode)):
            m.reset()


def run_torch(model: nn.Module, x: torch.Tensor, steps: int = T) -> dict[str, np.ndarray]:
    """Step ``model`` ``steps`` times on the same input; spikes of every neuron module."""
    model.eval()
    reset_state(model)
    neurons = {p: m for p, m in model.named_modules() if is_neuron(m)}
    rec: dict[str, list[np.ndarray]] = {p: [] for p in neurons}

    def hook(path: str):
        def fn(mod, inp, out):
            rec[path].append((out[0] if isinstance(out, tuple) else out).detach().clone().numpy())
        return fn

    handles = [m.register_forward_hook(hook(p)) for p, m in neurons.items()]
    try:
        with torch.no_grad():
            for _ in range(steps):
                model(x.clone())
    finally:
        for h in handles:
            h.remove()
    reset_state(model)
    return {p: np.stack(v) for p, v in rec.items()}


def check_exact(model: nn.Module, x: torch.Tensor, steps: int = T, torch_model: nn.Module | None = None,
                **options) -> tuple[Ticket, dict[str, np.ndarray]]:
    """Import ``model``, and require the reference spikes to equal ``torch_model``'s (default: the model)."""
    ticket = import_module(model, x, timesteps=steps, **options)
    result = simulate(ticket, x.numpy(), np.float32)
    ref = run_torch(torch_model if torch_model is not None else model, x, steps)
    assert ref, "no neuron modules to compare"
    total = 0
    for path, want in ref.items():
        got = result.layers[path]
        assert got.shape == want.shape, path
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"layer {path}: {len(bad)} spike mismatches, first at (t, b, ...) {bad[0].tolist()}"
        total += int(want.sum())
    assert 0 < total < sum(v.size for v in ref.values()), "degenerate test: no or all spikes"
    return ticket, ref


def ties_matter(ticket: Ticket, x: torch.Tensor, toward: float) -> bool:
    """True when moving every LIF threshold one ulp toward ``toward`` changes some spike."""
    nodes = [dataclasses.replace(n, threshold=np.nextafter(n.threshold, np.float32(toward)))
             if isinstance(n, LIF) else n for n in ticket.nodes]
    mutant = Ticket(tuple(nodes), ticket.edges, ticket.timesteps, ticket.encoding)
    a = simulate(ticket, x.numpy(), np.float32).layers
    b = simulate(mutant, x.numpy(), np.float32).layers
    return any(not np.array_equal(a[n.name], b[n.name]) for n in ticket.nodes if isinstance(n, LIF))


def leaky(**kw) -> nn.Module:
    kw.setdefault("beta", 0.5)
    kw.setdefault("init_hidden", True)
    return snn.Leaky(**kw)


def make_mlp() -> nn.Module:
    """An importable architecture for build_from_arch ("<this module>:make_mlp")."""
    return nn.Sequential(nn.Linear(12, 16), leaky(reset_mechanism="zero"), nn.Linear(16, 5),
                         leaky(beta=0.75, output=True))


# ============================================================ snnTorch Leaky
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("variant", ["scalar", "per_neuron", "graded_input"])
def test_snntorch_leaky_mlp_exact(reset: str, variant: str) -> None:
    if variant == "per_neuron":  # learnable per-neuron beta (non-dyadic too) and per-neuron threshold != 1
        beta1 = torch.tensor([0.25, 0.5, 0.75, 1.0, 0.9, 0.95, 1.2, -0.1] * 2)  # clamped to [0, 1] by snnTorch
        lif1 = snn.Leaky(beta=beta1, learn_beta=True, threshold=torch.tensor([1.0, 0.75] * 8), learn_threshold=True,
                         reset_mechanism=reset, init_hidden=True)
    else:
        lif1 = leaky(beta=0.5, threshold=1.0, reset_mechanism=reset)
    net = dyadic_(nn.Sequential(nn.Linear(12, 16), lif1, nn.Linear(16, 10),
                                leaky(beta=0.75, threshold=0.5, reset_mechanism=reset, output=True)), seed=1)
    x = graded((16, 12), 2) if variant == "graded_input" else spikes((16, 12), 2)
    ticket, _ = check_exact(net, x)
    want = {"zero": "zero", "subtract": "subtract_delayed", "none": "none"}[reset]
    assert [n.reset for n in ticket.neuron_layers()] == [want, want]
    assert ties_matter(ticket, x, -np.inf)  # ">" vs ">=" is exercised


def test_snntorch_init_hidden_false_tuple_and_output() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(10, 12), snn.Leaky(beta=0.5, reset_mechanism="zero")
            self.fc2, self.lif2 = nn.Linear(12, 4), snn.Leaky(beta=1.0, reset_mechanism="none")

        def forward(self, x):
            spk, _ = self.lif1(self.fc1(x))
            return self.lif2(self.fc2(spk))  # (spk, mem): the spikes are the output

    net = dyadic_(Net(), seed=3)
    ticket, _ = check_exact(net, spikes((8, 10), 4))
    assert ticket.output_source.name == "lif2"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), reset=st.sampled_from(["zero", "subtract", "none"]),
       beta=st.floats(0.0, 1.25, width=32), theta=st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0]),
       hidden=st.integers(1, 12))
def test_snntorch_leaky_random_exact(seed: int, reset: str, beta: float, theta: float, hidden: int) -> None:
    net = dyadic_(nn.Sequential(nn.Linear(6, hidden), leaky(beta=beta, threshold=theta, reset_mechanism=reset),
                                nn.Linear(hidden, 3), leaky(beta=0.5, reset_mechanism=reset)), seed=seed, lo=-6)
    x = spikes((4, 6), seed + 1, p=0.7)
    ticket = import_module(net, x, timesteps=8)
    result = simulate(ticket, x.numpy(), np.float32)
    ref = run_torch(net, x, 8)
    for path, want in ref.items():
        assert np.array_equal(result.layers[path], want), path


def test_snntorch_conv_net_exact() -> None:
    net = dyadic_(nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), leaky(reset_mechanism="subtract"),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2), leaky(beta=0.75, threshold=0.5),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 4, 2, stride=2, padding="valid", bias=False), leaky(beta=1.0, threshold=0.25),
        nn.Flatten(), nn.Linear(4, 5), leaky(beta=0.5, output=True),
    ), seed=5, lo=-6)
    x = spikes((6, 2, 8, 8), 6)
    ticket, _ = check_exact(net, x)
    assert ticket.shapes["4"] == (6, 4, 4)
    assert ticket.node("3").padding == (2, 2) and ticket.node("3").groups == 2
    assert ties_matter(ticket, x, -np.inf)


# ================================================================ BatchNorm
def exact_bn_(bn: nn.Module, seed: int) -> nn.Module:
    """BatchNorm whose eval transform is exact on dyadic values: var + eps = 1, dyadic γ, β, mean."""
    g = torch.Generator().manual_seed(seed)
    n = bn.num_features
    with torch.no_grad():
        bn.eps = 0.25
        bn.running_var.fill_(0.75)
        bn.running_mean.copy_(torch.randint(-4, 5, (n,), generator=g).float() / 8)
        bn.weight.copy_(torch.tensor([2.0, -0.5, 1.0, 0.25])[torch.randint(0, 4, (n,), generator=g)])
        bn.bias.copy_(torch.randint(-4, 5, (n,), generator=g).float() / 8)
    return bn.eval()


def test_batchnorm_folded_exact() -> None:
    net = dyadic_(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), leaky(),
                                nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), leaky(output=True)), seed=7)
    exact_bn_(net[1], 8)
    exact_bn_(net[5], 9)
    ticket, _ = check_exact(net, spikes((5, 2, 6, 6), 10))
    assert ticket.metadata["folded_batchnorm"] == "1->0,5->4"
    assert [n.kind for n in ticket.nodes if n.kind in ("conv2d", "linear")] == ["conv2d", "linear"]


def test_batchnorm_folded_binarized_exact() -> None:
    """Binary weights α·sign followed by BN with negative γ: folding flips signs and scales α."""
    net = dyadic_(nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), leaky(output=True)), seed=11)
    exact_bn_(net[1], 12)
    oracle = copy.deepcopy(net)
    with torch.no_grad():
        oracle[0].weight.copy_(0.25 * torch.where(net[0].weight < 0, -1.0, 1.0) * (net[0].weight != 0))
    ticket, _ = check_exact(net, spikes((6, 10), 13), torch_model=oracle, binarize=True, alpha=0.25)
    w = ticket.node("0").weights
    assert isinstance(w, BinaryWeights)
    gamma = net[1].weight.detach().numpy()
    assert np.array_equal(w.alpha, (0.25 * np.abs(gamma)).astype(np.float32))


def test_batchnorm_fold_values_general() -> None:
    net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5), leaky())
    torch.manual_seed(0)
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].weight.uniform_(-2, 2)
        net[1].bias.uniform_(-1, 1)
    ticket = import_module(net.requires_grad_(False), input_shape=(3, 8, 8))
    bn = net[1]
    s = bn.weight.double() / torch.sqrt(bn.running_var.double() + float(np.float32(bn.eps)))
    w = (net[0].weight.double() * s[:, None, None, None]).float().numpy()
    b = ((net[0].bias.double() - bn.running_mean.double()) * s + bn.bias.double()).float().numpy()
    node = ticket.node("0")
    assert np.array_equal(node.weights.values, w) and np.array_equal(node.bias, b)


def test_batchnorm_refusals() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), leaky())
    with pytest.raises(SltUnsupportedError, match="fold_bn=True"):
        import_module(net, input_shape=(4,), fold_bn=False)
    after_neuron = nn.Sequential(nn.Linear(4, 4), leaky(), nn.BatchNorm1d(4))
    with pytest.raises(SltUnsupportedError, match="BatchNorm '2'.*cannot be folded"):
        import_module(after_neuron, input_shape=(4,))


# ============================================================== SpikingJelly
@pytest.mark.parametrize("decay_input", [True, False], ids=["decay_input", "no_decay_input"])
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
@pytest.mark.parametrize("tau", [2.0, 3.0])
def test_spikingjelly_lif_exact(v_reset, tau: float, decay_input: bool) -> None:
    net = dyadic_(nn.Sequential(
        nn.Linear(12, 16), sj_neuron.LIFNode(tau=tau, decay_input=decay_input, v_reset=v_reset),
        nn.Linear(16, 10), sj_neuron.LIFNode(tau=1.5, v_threshold=0.5, v_reset=v_reset, decay_input=decay_input,
                                             surrogate_function=sj_surrogate.ATan()),
    ), seed=14)
    x = spikes((16, 12), 15)
    ticket, _ = check_exact(net, x)
    first = ticket.node("1")
    assert first.charge == ("decay_input" if decay_input else "leaky_tau")
    assert first.reset == ("zero" if v_reset == 0.0 else "subtract")
    assert first.threshold[0] == np.nextafter(np.float32(1), np.float32(0)) and first.reset_amount[0] == 1
    assert ties_matter(ticket, x, np.inf)  # SpikingJelly fires on v >= θ: ties matter


@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
def test_spikingjelly_if_exact(v_reset) -> None:
    net = dyadic_(nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), sj_neuron.IFNode(v_reset=v_reset), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 6), sj_neuron.IFNode(v_threshold=0.75, v_reset=v_reset),
    ), seed=16)
    x = graded((8, 1, 8, 8), 17)
    ticket, _ = check_exact(net, x)
    assert all(n.is_if for n in ticket.neuron_layers())
    assert ties_matter(ticket, x, np.inf)


def test_spikingjelly_refusals() -> None:
    cases = [
        (sj_neuron.LIFNode(v_reset=0.5), "v_reset=0.5"),
        (sj_neuron.IFNode(surrogate_function=sj_surrogate.Sigmoid(spiking=False)), "Heaviside"),
        (sj_neuron.ParametricLIFNode(), "not supported"),
    ]
    for neuron, message in cases:
        with pytest.raises(SltUnsupportedError, match=message):
            import_module(nn.Sequential(nn.Linear(3, 3), neuron), input_shape=(3,))


# ================================================================== residual
class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(10, 8), snn.Leaky(beta=0.5)
        self.fc2, self.skip = nn.Linear(8, 8), nn.Linear(10, 8, bias=False)
        self.lif2 = leaky(beta=0.75, reset_mechanism="zero")
        self.block = nn.Sequential(nn.Identity(), nn.Dropout(0.5))
        self.fc3, self.lif3 = nn.Linear(8, 4), sj_neuron.IFNode(v_reset=None)

    def forward(self, x):
        spk1, _ = self.lif1(self.fc1(x))
        s2 = self.lif2(self.fc2(spk1) + self.skip(x))  # residual join of currents
        h = torch.add(self.block(s2), spk1)  # residual join of spikes (graded 0..2)
        return self.lif3(self.fc3(h))


def test_residual_fx_exact() -> None:
    net = dyadic_(Residual(), seed=21)
    ticket, _ = check_exact(net, spikes((8, 10), 22))
    adds = [n.name for n in ticket.nodes if n.kind == "add"]
    assert len(adds) == 2
    assert [e.src for e in ticket.inputs_of(adds[1])] == ["lif2", "lif1"]
    assert ticket.metadata["frameworks"] == "snntorch,spikingjelly"


def test_membrane_use_refused() -> None:
    class UsesMem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif, self.out = nn.Linear(4, 4), snn.Leaky(beta=0.5), nn.Linear(4, 2)

        def forward(self, x):
            spk, mem = self.lif(self.fc(x))
            return self.out(mem)

    with pytest.raises(SltUnsupportedError, match="membrane potential of snnTorch neuron 'lif'"):
        import_module(UsesMem(), input_shape=(4,))


# ===================================================================== masks
def test_prune_masks_exact() -> None:
    net = dyadic_(nn.Sequential(nn.Linear(12, 16), leaky(), nn.Linear(16, 6), leaky(output=True)), seed=23)
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    prune.random_unstructured(net[2], "weight", amount=0.7)
    with torch.no_grad():  # a kept weight that is exactly zero stays kept
        net[0].weight_orig[0, 0] = 0.0
        net[0].weight_mask[0, 0] = 1.0
    ticket, _ = check_exact(net, spikes((8, 12), 24))
    for path in ("0", "2"):
        mask = ticket.node(path).weights.mask
        assert np.array_equal(mask, net[int(path)].weight_mask.numpy() != 0)
    assert ticket.node("0").weights.mask[0, 0]


def test_explicit_masks_and_zero_weights() -> None:
    net = dyadic_(nn.Sequential(nn.Linear(12, 16), leaky(), nn.Linear(16, 6), leaky(output=True)), seed=25)
    g = torch.Generator().manual_seed(26)
    m0 = torch.rand(16, 12, generator=g) < 0.4
    m2 = torch.rand(6, 16, generator=g) < 0.6
    oracle = copy.deepcopy(net)
    with torch.no_grad():
        oracle[0].weight.mul_(m0)
        oracle[2].weight.mul_(m2)
    ticket, _ = check_exact(net, spikes((8, 12), 27), torch_model=oracle, masks={"0.weight": m0, "2": m2.numpy()})
    assert np.array_equal(ticket.node("0").weights.mask, m0.numpy())
    plain = import_module(oracle, input_shape=(12,))  # no masks given: zeros in the weights are pruned
    assert np.array_equal(plain.node("0").weights.mask, oracle[0].weight.detach().numpy() != 0)
    with pytest.raises(SltImportError, match="masks name '9.weight'"):
        import_module(net, input_shape=(12,), masks={"9.weight": m0})
    with pytest.raises(SltImportError, match="shape"):
        import_module(net, input_shape=(12,), masks={"0": m2})


# ================================================================== binarize
def test_binarize_given_alpha_exact() -> None:
    net = dyadic_(nn.Sequential(nn.Linear(12, 16), leaky(), nn.Linear(16, 6), leaky(output=True)), seed=28)
    prune.l1_unstructured(net[0], "weight", amount=0.3)
    alpha2 = torch.tensor([0.25, 0.5, 0.125, 1.0, 0.75, 0.375])
    oracle = nn.Sequential(nn.Linear(12, 16), leaky(), nn.Linear(16, 6), leaky(output=True))
    with torch.no_grad():
        w0, m0 = net[0].weight_orig, net[0].weight_mask
        oracle[0].weight.copy_(0.5 * torch.where(w0 < 0, -1.0, 1.0) * m0)
        oracle[0].bias.copy_(net[0].bias)
        w2 = net[2].weight
        oracle[2].weight.copy_(alpha2[:, None] * torch.where(w2 < 0, -1.0, 1.0) * (w2 != 0))
        oracle[2].bias.copy_(net[2].bias)
    ticket, _ = check_exact(net, spikes((8, 12), 29), torch_model=oracle, binarize=True,
                            alpha={"0": 0.5, "2.weight": alpha2})
    assert all(isinstance(n.weights, BinaryWeights) for n in ticket.synapse_layers())
    assert ticket.metadata["binarized"] == "true"


def test_binarize_default_alpha() -> None:
    net = nn.Sequential(nn.Linear(7, 5), leaky())
    prune.random_unstructured(net[0], "weight", amount=0.4)
    ticket = import_module(net, input_shape=(7,), binarize=True)
    w = net[0].weight_orig.detach().numpy().astype(np.float64)
    m = net[0].weight_mask.numpy() != 0
    want = (np.abs(w * m).sum(1) / np.maximum(m.sum(1), 1)).astype(np.float32)
    got = ticket.node("0").weights
    assert np.array_equal(got.alpha, want) and np.array_equal(got.negative, (w < 0) & m)
    with pytest.raises(SltImportError, match="binarize=True"):
        import_module(net, input_shape=(7,), alpha=0.5)


# =============================================================== checkpoints
def test_checkpoint_state_dict_with_prune_keys(tmp_path) -> None:
    net = dyadic_(make_mlp(), seed=30)
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    direct = import_module(net, input_shape=(12,))
    path = tmp_path / "sd.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)
    ckpt = load_checkpoint(path)
    assert "0.weight" in ckpt.state_dict and "0.weight_orig" not in ckpt.state_dict and ckpt.module is None
    assert torch.equal(ckpt.masks["0.weight"], net[0].weight_mask != 0)
    fresh = make_mlp()
    fresh.load_state_dict(ckpt.state_dict)
    assert tickets_equal(import_module(fresh, input_shape=(12,), masks=ckpt.masks), direct)
    module, masks = build_from_arch(f"{__name__}:make_mlp", path)
    assert tickets_equal(import_module(module, input_shape=(12,), masks=masks), direct)


def test_checkpoint_pickled_module(tmp_path) -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.Flatten())
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    with pytest.raises(SltImportError, match="arbitrary code"):
        load_checkpoint(path)
    with pytest.warns(UserWarning, match="arbitrary code"):
        ckpt = load_checkpoint(path, trust_pickle=True)
    assert isinstance(ckpt.module, nn.Sequential)
    assert import_module(ckpt.module, input_shape=(4,)).output_shape == (3,)


def test_checkpoint_bad_files(tmp_path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint \x00\x01\x02")
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    for bad in (garbage, truncated, tmp_path / "missing.pt"):
        for trust in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(SltImportError) as info:
                    load_checkpoint(bad, trust_pickle=trust)
            assert "\n" not in str(info.value)
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(SltImportError, match="neither a state_dict"):
        load_checkpoint(not_weights)


def test_build_from_arch_refusals(tmp_path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(make_mlp().state_dict(), path)
    for spec, message in [("no_colon", "must look like"), ("no_such_module_xyz:f", "cannot import"),
                          ("torch.nn:NoSuchThing", "no attribute"), ("torch.nn:Linear", "failed"),
                          ("torch:pi", "not callable"), ("torch.nn:Identity", "do not fit")]:
        with pytest.raises(SltImportError, match=message):
            build_from_arch(spec, path)


# ================================================================ refusals
@pytest.mark.parametrize("layer, message", [
    (nn.ReLU(), "module '1' of type torch.nn.modules.activation.ReLU is not supported"),
    (snn.Leaky(beta=0.5, graded_spikes_factor=2.0, init_hidden=True), "graded_spikes_factor"),
    (snn.Leaky(beta=0.5, reset_delay=False, init_hidden=True), "reset_delay=False"),
    (snn.Leaky(beta=0.5, threshold=-0.5, init_hidden=True), "negative threshold"),
    (snn.Leaky(beta=0.5, init_hidden=True, spike_grad=torch.sigmoid), "Heaviside"),
    (snn.Synaptic(alpha=0.5, beta=0.5, init_hidden=True), "not supported"),
])
def test_unsupported_layers(layer: nn.Module, message: str) -> None:
    with pytest.raises(SltUnsupportedError, match=message):
        import_module(nn.Sequential(nn.Linear(3, 3), layer), input_shape=(3,))


def test_other_refusals() -> None:
    conv_same_even = nn.Sequential(nn.Conv2d(1, 2, 2, padding="same"), leaky())
    with pytest.raises(SltUnsupportedError, match="asymmetrically"):
        import_module(conv_same_even, input_shape=(1, 5, 5))
    with pytest.raises(SltUnsupportedError, match="ceil_mode"):
        import_module(nn.Sequential(nn.AvgPool2d(2, ceil_mode=True)), input_shape=(1, 5, 5))
    with pytest.raises(SltUnsupportedError, match="float64"):
        import_module(nn.Sequential(nn.Linear(3, 3), leaky()).double(), input_shape=(3,))
    with pytest.raises(SltImportError, match="example_input"):
        import_module(nn.Sequential(nn.Linear(3, 3), leaky()))
    with pytest.raises(SltImportError, match="Linear expects input shape"):
        import_module(nn.Sequential(nn.Linear(3, 3), leaky()), input_shape=(4,))

    class TimeLoop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif = nn.Linear(3, 3), snn.Leaky(beta=0.5)

        def forward(self, x):
            mem = self.lif.init_leaky()
            out = []
            for _ in range(4):
                spk, mem = self.lif(self.fc(x), mem)
                out.append(spk)
            return torch.stack(out)

    with pytest.raises((SltUnsupportedError, SltImportError)):
        import_module(TimeLoop(), input_shape=(3,))


def test_public_from_torch() -> None:
    net = dyadic_(make_mlp(), seed=31)
    x = spikes((4, 12), 32)
    ticket = slt_deploy.from_torch(net, x, timesteps=5)
    assert ticket.timesteps == 5 and ticket.input_shape == (12,)
    assert isinstance(ticket.node("0").weights, FloatWeights)


def test_binarize_named_layers_only_exact() -> None:
    """binarize={"0"} (a module path, or "0.weight") binarizes that layer only; the other stays float32,
    and the ticket fires the spikes of the torch model whose first layer is α·sign."""
    net = dyadic_(nn.Sequential(nn.Linear(12, 16), leaky(), nn.Linear(16, 6), leaky(output=True)), seed=31)
    oracle = copy.deepcopy(net)
    with torch.no_grad():
        w0 = net[0].weight
        oracle[0].weight.copy_(0.5 * torch.where(w0 < 0, -1.0, 1.0) * (w0 != 0))
    for names in ({"0"}, ["0.weight"]):
        ticket, _ = check_exact(net, spikes((8, 12), 32), torch_model=oracle, binarize=names, alpha={"0": 0.5})
        assert isinstance(ticket.node("0").weights, BinaryWeights)
        assert ticket.node("2").weights.kind == "float32" and ticket.metadata["binarized"] == "0"
    with pytest.raises(SltImportError, match="binarize names '5'"):
        import_module(net, input_shape=(12,), binarize={"5"})
