"""The ECCV 2022 networks of the search: the SpikingJelly-style LIF against SpikingJelly itself
and against the reference simulator, VGG16 / ResNet19 topology, export to a valid ticket,
devices and mixed precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("snntorch")

import slt_deploy as slt  # noqa: E402
from slt_deploy.errors import SltInputError  # noqa: E402
from slt_deploy.search import SearchConfig, SltSearchError, from_arrays, run_search  # noqa: E402
from slt_deploy.search.archs import resnet19, vgg16  # noqa: E402
from slt_deploy.search.engine import resolve_amp  # noqa: E402
from slt_deploy.search.model import reset_state  # noqa: E402
from slt_deploy.search.neurons import SpikingLIF  # noqa: E402


def _drive(neuron, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    spikes, volts = [], []
    for t in range(steps):
        spikes.append(neuron(x[t]))
        volts.append(neuron.v.clone())
    return torch.stack(spikes), torch.stack(volts)


def test_spiking_lif_is_spikingjellys_lifnode() -> None:
    """Forward spikes and membranes bit for bit, gradients to rounding, on standardized float32 input."""
    neuron_mod = pytest.importorskip("spikingjelly.activation_based.neuron")
    surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(12, 64, 50, generator=g) * 1.3 + 0.6).float()  # many spikes and many sub-threshold steps
    ours = SpikingLIF()
    theirs = neuron_mod.LIFNode(tau=4.0 / 3.0, v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate.ATan(),
                                detach_reset=True)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    sa, va = _drive(ours, xa, 12)
    sb, vb = _drive(theirs, xb, 12)
    assert torch.equal(sa, sb) and torch.equal(va, vb)
    assert 0.05 < float(sa.detach().mean()) < 0.8
    weights = torch.randn(sa.shape, generator=g)
    (sa * weights).sum().backward()
    (sb * weights).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-7)


def test_spiking_lif_imports_exactly_into_the_ir() -> None:
    """A bare SpikingLIF imported by from_torch fires the same spikes on the reference simulator."""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(30, 3, 5, 5, generator=g) * 0.9 + 0.7).float()
    neuron = SpikingLIF()
    ticket = slt.from_torch(neuron, x[:1], timesteps=9)
    (lif,) = [n for n in ticket.nodes if n.kind == "lif"]
    assert lif.charge == "decay_input" and lif.reset == "zero"
    assert lif.tau.flat[0] == np.float32(4 / 3) and lif.threshold.flat[0] == np.nextafter(np.float32(1), 0)
    ref = slt.run(ticket, x.numpy())
    reset_state(neuron)
    with torch.no_grad():
        ours = torch.stack([neuron(x) for _ in range(9)]).numpy()
    assert np.array_equal(ref.spikes, ours) and ours.sum() > 0


def _layers(model, kind) -> list:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_vgg16_and_resnet19_topology() -> None:
    from torch import nn

    v = vgg16((3, 32, 32), 10)
    convs = _layers(v, nn.Conv2d)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert len(_layers(v, nn.BatchNorm2d)) == 13 and len(_layers(v, SpikingLIF)) == 13
    assert len(_layers(v, nn.MaxPool2d)) == 5
    (fc,) = _layers(v, nn.Linear)
    assert (fc.in_features, fc.out_features) == (512, 10)
    assert sum(p.numel() for p in v.parameters()) == 14_728_266  # the VGG16-BN of the CIFAR papers
    r = resnet19((3, 32, 32), 100)
    convs = _layers(r, nn.Conv2d)
    three = [c for c in convs if c.kernel_size == (3, 3)]
    assert len(three) == 17 and len(_layers(r, nn.Linear)) == 2  # 17 convolutions + 2 fully connected = 19
    assert [c.out_channels for c in three] == [64] + [128] * 6 + [256] * 6 + [512] * 4
    assert [c.stride for c in convs if c.kernel_size == (1, 1)] == [(2, 2)] * 3  # shortcuts where the shape changes
    assert [(f.in_features, f.out_features) for f in _layers(r, nn.Linear)] == [(512, 256), (256, 100)]
    with torch.no_grad():
        assert r(torch.rand(2, 3, 32, 32)).shape == (2, 100) and v(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    half = vgg16((3, 32, 32), 10, width=0.5)
    assert [c.out_channels for c in _layers(half, nn.Conv2d)][:3] == [32, 32, 64]


@pytest.fixture(scope="module")
def images32():
    pytest.importorskip("sklearn")
    from slt_deploy.search import digits

    d = digits()

    def up(x):  # digits upsampled to 3x32x32 (pixel k/16 in three colour mixes): real images, CIFAR layout
        img = np.asarray(x).reshape(-1, 1, 8, 8).repeat(4, axis=2).repeat(4, axis=3)
        return np.concatenate([img, img * np.float32(0.5), 1 - img], axis=1).astype(np.float32)

    return from_arrays({"x_train": up(d.x_train[:128]), "y_train": d.y_train[:128], "x_test": up(d.x_test[:32]),
                        "y_test": d.y_test[:32]}, name="digits32")


@pytest.mark.parametrize("arch", ["vgg16", "resnet19"])
def test_deep_network_search_exports_a_valid_ticket(tmp_path: Path, images32, arch: str) -> None:
    cfg = SearchConfig(method="imp", arch=arch, width=1 / 16, rounds=1, epochs=1, timesteps=2, batch_size=32,
                       binary=True)
    result = run_search(cfg, tmp_path / "t.slt", dataset=images32, threads=1)
    ticket = slt.load(tmp_path / "t.slt")
    lifs = [n for n in ticket.nodes if n.kind == "lif"]
    assert lifs and all(n.charge == "decay_input" and n.reset == "zero" for n in lifs)
    assert "folded_batchnorm" in ticket.metadata and ticket.shapes[ticket.output.name] == (10,)
    assert all(layer.weights.kind == "binary" for layer in ticket.synapse_layers())
    log = result.log["ticket"]
    assert log["sparsity"] == pytest.approx(0.25, abs=1e-3) and log["reference_samples"] == 16
    # the ticket on the reference simulator and the trained network (BatchNorm unfolded) agree on
    # the checked samples up to BatchNorm folding's rounding
    x = np.asarray(images32.x_test[:16])
    ref = slt.run(ticket, x).predictions()
    assert int((ref == images32.y_test[:16]).sum()) == log["correct_reference"]
    from slt_deploy.search.trainer import Trainer

    torch_pred = Trainer(eval_batch=16).predict(result.model, x, 2)
    assert np.mean(torch_pred == ref) >= 0.8


def test_deep_networks_need_their_image_sizes(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    with pytest.raises(SltInputError, match="--arch vgg16 needs images whose height and width are multiples of 32"):
        run_search(SearchConfig(arch="vgg16", rounds=1, epochs=1), tmp_path / "t.slt", threads=1)
    with pytest.raises(SltInputError, match="the resnet19 net needs images"):
        run_search(SearchConfig(arch="resnet19", rounds=1, epochs=1), tmp_path / "t.slt", threads=1,
                   dataset=from_arrays({"x": np.zeros((10, 3)), "y": np.arange(10) % 2}))


def test_resnet19_trains_on_digits_8x8_and_keeps_single_process_results(tmp_path: Path) -> None:
    """ResNet19 fits 8x8 digits (three stride-2 stages); a search is reproducible bit for bit."""
    pytest.importorskip("sklearn")
    from slt_deploy.search import digits

    d = digits()
    small = from_arrays({"x_train": d.x_train[:96], "y_train": d.y_train[:96], "x_test": d.x_test[:16],
                         "y_test": d.y_test[:16]}, name="digits[:96]", image_shape=(1, 8, 8))
    cfg = SearchConfig(method="et", arch="resnet19", width=1 / 32, rounds=1, epochs=2, timesteps=3, batch_size=32)
    a = run_search(cfg, tmp_path / "a.slt", dataset=small, threads=1)
    b = run_search(cfg, tmp_path / "b.slt", dataset=small, threads=1)
    assert (tmp_path / "a.slt").read_bytes() == (tmp_path / "b.slt").read_bytes()
    assert a.log["et"]["kl"] == b.log["et"]["kl"]
    assert json.loads((tmp_path / "a.json").read_text())["distributed"]["world_size"] == 1


def test_mixed_precision_rules() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_amp("auto", cpu, "vgg16") is None and resolve_amp("off", cuda, "vgg16") is None
    assert resolve_amp("auto", cuda, "mlp") is None  # snnTorch membranes would run in half precision
    with pytest.raises(SltSearchError, match="--amp on needs --device cuda"):
        resolve_amp("on", cpu, "vgg16")
    with pytest.raises(SltSearchError, match="snnTorch neurons would keep their membranes in half precision"):
        resolve_amp("on", cuda, "conv")
    with pytest.raises(SltSearchError, match="--amp 'fast'"):
        resolve_amp("fast", cpu, "mlp")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_search_on_cuda_with_mixed_precision(tmp_path: Path, images32) -> None:
    cfg = SearchConfig(method="imp", arch="resnet19", width=1 / 8, rounds=1, epochs=2, timesteps=2, batch_size=32)
    result = run_search(cfg, tmp_path / "t.slt", dataset=images32, device="cuda", amp="auto")
    log = result.log
    assert log["distributed"]["device"] == "cuda" and log["distributed"]["amp"] in ("bfloat16", "float16")
    ticket = slt.load(tmp_path / "t.slt")
    assert all(np.all(np.isfinite(layer.weights.values)) for layer in ticket.synapse_layers())
    x = np.asarray(images32.x_test[:16])
    assert int((slt.run(ticket, x).predictions() == images32.y_test[:16]).sum()) == log["ticket"]["correct_reference"]
    # evaluation and export are float32: the exported network's accuracy is measured without autocast
    assert abs(log["ticket"]["accuracy_reference"] - log["ticket"]["accuracy_torch"]) <= 0.25


def test_spikformer_search_exports_an_attention_ticket_that_runs_exactly(tmp_path: Path) -> None:
    """--arch spikformer: ConvPEP on 8x8 digits (16 tokens, half kept), SSA + MLP block, IMP with binarization;
    the exported ticket holds the attention kinds, and cpu / onnxruntime fire the reference's spikes."""
    pytest.importorskip("sklearn")
    from slt_deploy.search import digits

    d = digits()
    small = from_arrays({"x_train": d.x_train[:96], "y_train": d.y_train[:96], "x_test": d.x_test[:16],
                         "y_test": d.y_test[:16]}, name="digits[:96]", image_shape=(1, 8, 8))
    cfg = SearchConfig(method="imp", arch="spikformer", hidden=16, rounds=1, epochs=1, timesteps=2, batch_size=32,
                       binary=True, token_keep=0.5)
    result = run_search(cfg, tmp_path / "t.slt", dataset=small, threads=1)
    ticket = slt.load(tmp_path / "t.slt")
    kinds = {n.kind for n in ticket.nodes}
    assert {"matmul", "transpose", "reshape", "reduce", "conv2d"} <= kinds
    assert ticket.shapes[ticket.input.name] == (1, 8, 8)
    (mask,) = [n for n in ticket.nodes if n.kind == "select"]  # token pruning: the 8 most intense 2x2 patches
    from slt_deploy.search.spikformer import important_tokens

    assert mask.indices == tuple(important_tokens(np.asarray(small.x_train).reshape(-1, 1, 8, 8), 2, 0.5))
    assert len(mask.indices) == 8 and ticket.shapes[mask.name][0] == 8
    assert all(layer.weights.kind == "binary" for layer in ticket.synapse_layers())
    assert result.log["ticket"]["sparsity"] == pytest.approx(0.25, abs=1e-3)
    x = np.asarray(small.x_test[:8]).reshape(-1, 1, 8, 8)
    ref = slt.run(ticket, x, record=True)
    for target in ("cpu", "onnxruntime"):
        got = slt.run(ticket, x, target=target, record=True)
        for name, values in ref.layers.items():
            np.testing.assert_array_equal(got.layers[name], values, err_msg=f"{target}: {name}")


def test_multisp_binary_convpep_scope_and_best_train_epoch(tmp_path: Path) -> None:
    """--binary-scope convpep binarizes only the patch embedding (pep, rpe), the blocks keep float32
    weights; --binary-keep best-train keeps the fine-tune epoch of best training accuracy, and the
    packed ticket is that epoch's network (torch and reference agree on it)."""
    pytest.importorskip("sklearn")
    from slt_deploy.search import digits

    d = digits()
    small = from_arrays({"x_train": d.x_train[:96], "y_train": d.y_train[:96], "x_test": d.x_test[:16],
                         "y_test": d.y_test[:16]}, name="digits[:96]", image_shape=(1, 8, 8))
    cfg = SearchConfig(method="imp", arch="spikformer", hidden=16, rounds=1, epochs=3, timesteps=2, batch_size=32,
                       binary=True, token_keep=0.5, binary_scope="convpep", binary_keep="best-train")
    result = run_search(cfg, tmp_path / "t.slt", dataset=small, threads=1)
    ticket = slt.load(tmp_path / "t.slt")
    kinds = {layer.name: layer.weights.kind for layer in ticket.synapse_layers()}
    assert kinds.pop("pep") == kinds.pop("rpe") == "binary" and set(kinds.values()) == {"float32"}
    binary_round = result.log["rounds"][-1]
    assert binary_round["stage"] == "binary" and 1 <= binary_round["kept_epoch"] <= 3
    assert result.log["ticket"]["accuracy_reference"] == result.log["ticket"]["accuracy_torch"]
    assert result.log["ticket"]["accuracy_torch"] == binary_round["test_accuracy"]
    with pytest.raises(SltSearchError, match="convpep"):
        SearchConfig(arch="mlp", binary=True, binary_scope="convpep")
    with pytest.raises(SltSearchError, match="binary-keep"):
        SearchConfig(binary=True, binary_keep="best-test")
