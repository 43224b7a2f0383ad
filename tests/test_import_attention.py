"""Hand-written snnTorch spiking transformers (Spikformer SSA and spike-driven SDSA blocks, one
and two heads, residuals, BatchNorm1d over tokens) imported with ``from_torch``: the ticket
fires snnTorch's spikes exactly, every neuron and step, on the reference, cpu, torch and
onnxruntime targets.

As in tests/test_importers.py, weights, biases and BatchNorm statistics are dyadic with few
bits so that snnTorch's float32 sums are exact too; spike x spike attention products are
integer counts and exact anyway.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

snn = pytest.importorskip("snntorch")

from test_importers import dyadic_, exact_bn_, leaky, run_torch, spikes  # noqa: E402

import slt_deploy as slt  # noqa: E402
from slt_deploy.errors import SltUnsupportedError  # noqa: E402
from slt_deploy.importers.torch import import_module  # noqa: E402

T = 6
TARGETS = ["reference", "cpu", "torch", "onnxruntime"]


class Attention(nn.Module):
    """Spikformer SSA ``LIF((Q Kᵀ · 0.125) V)`` or SDSA ``Q ⊙ LIF(Σ_tokens K ⊙ V)``, projection, residual."""

    def __init__(self, dim: int, heads: int, variant: str, neuron=None) -> None:
        super().__init__()
        self.heads, self.variant = heads, variant
        for part in ("q", "k", "v", "proj"):
            setattr(self, part, nn.Linear(dim, dim))
            setattr(self, part + "_bn", nn.BatchNorm1d(dim))
            setattr(self, part + "_lif", neuron() if neuron else leaky())
        self.attn_lif = neuron(0.5) if neuron else snn.Leaky(beta=0.5, threshold=0.5, init_hidden=True)

    def _lif_bn_linear(self, part: str, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, part)(x)
        y = getattr(self, part + "_bn")(y.transpose(-1, -2)).transpose(-1, -2)  # BN1d over the channels
        return getattr(self, part + "_lif")(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (self._lif_bn_linear(p, x).reshape(b, n, self.heads, d // self.heads).permute(0, 2, 1, 3)
                   for p in ("q", "k", "v"))
        if self.variant == "ssa":
            y = self.attn_lif((q @ k.transpose(-2, -1)) * 0.125 @ v)
        else:
            y = q * self.attn_lif((k * v).sum(dim=-2, keepdim=True))
        y = y.transpose(1, 2).reshape(b, n, d)
        return x + self._lif_bn_linear("proj", y)


class Spikformer(nn.Module):
    """Token embedding (LIF of a Linear per token), attention blocks, mean over tokens, classifier."""

    def __init__(self, features: int, dim: int, heads: int, variant: str, blocks: int = 1) -> None:
        super().__init__()
        self.embed, self.embed_lif = nn.Linear(features, dim), leaky()
        self.blocks = nn.ModuleList(Attention(dim, heads, variant) for _ in range(blocks))
        self.head, self.out = nn.Linear(dim, 3), leaky(output=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed_lif(self.embed(x))
        for block in self.blocks:
            t = block(t)
        return self.out(self.head(t.mean(dim=1)))


def _model(variant: str, heads: int, seed: int, blocks: int = 1) -> nn.Module:
    net = dyadic_(Spikformer(8, 8, heads, variant, blocks), seed=seed, lo=-6, hi=8, bits=2)
    for i, m in enumerate(mod for mod in net.modules() if isinstance(mod, nn.BatchNorm1d)):
        exact_bn_(m, seed + i)
    return net.eval()


@pytest.mark.parametrize("variant", ["ssa", "sdsa"])
@pytest.mark.parametrize("heads", [1, 2])
def test_snntorch_spikformer_blocks_fire_exactly_on_every_target(variant: str, heads: int) -> None:
    net = _model(variant, heads, seed=10)  # every layer fires 25-82% of the time (attention included)
    x = spikes((5, 6, 8), 11 + heads, p=0.6)  # (batch, tokens, features) spikes, the same at every step
    ticket = import_module(net, x, timesteps=T)
    assert {"matmul" if variant == "ssa" else "mul", "reduce", "transpose", "reshape"} <= {n.kind for n in ticket.nodes}
    assert ticket.metadata["folded_batchnorm"].count("->") == 4
    want = run_torch(net, x, T)
    fired = sum(int(s.sum()) for s in want.values())
    assert 0 < fired < sum(s.size for s in want.values()), "degenerate test: no or all spikes"
    assert min(float(s.mean()) for s in want.values()) > 0.2, "a layer (attention?) hardly fires"
    for target in TARGETS:
        res = slt.run(ticket, x.numpy(), target=target, record=True)
        for path, spikes_torch in want.items():
            np.testing.assert_array_equal(res.layers[path], spikes_torch, err_msg=f"{target}: {path}")


def test_two_blocks_and_the_slt_file_round_trip(tmp_path) -> None:
    net = _model("ssa", 2, seed=9, blocks=2)
    x = spikes((3, 6, 8), 4, p=0.6)
    ticket = import_module(net, x, timesteps=T)
    slt.save(ticket, tmp_path / "t.slt")
    loaded = slt.load(tmp_path / "t.slt")
    want = run_torch(net, x, T)
    res = slt.run(loaded, x.numpy(), target="cpu", record=True)
    for path, spikes_torch in want.items():
        np.testing.assert_array_equal(res.layers[path], spikes_torch, err_msg=path)


def test_export_to_nir_refuses_the_attention_node_and_onnx_runs(tmp_path) -> None:
    ticket = import_module(_model("ssa", 1, seed=2), spikes((2, 6, 8), 1), timesteps=T)
    with pytest.raises(SltUnsupportedError, match=r"node 'matmul' \(matmul\): NIR 1.0 has no"):
        slt.export(ticket, tmp_path / "t.nir", "nir")
    slt.export(ticket, tmp_path / "t.onnx", "onnx")
    assert (tmp_path / "t.onnx").stat().st_size > 0


def test_unsupported_token_code_is_refused_by_name() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = leaky()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif(x.transpose(0, 1))

    with pytest.raises(SltUnsupportedError, match="batch axis"):
        import_module(Bad(), spikes((2, 3, 4), 0))

    class BadScale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = leaky()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif((x @ x.transpose(-1, -2)) * 0.3)

    with pytest.raises(SltUnsupportedError, match="power of two"):
        import_module(BadScale(), spikes((2, 3, 4), 0))


def test_spikingjelly_neurons_in_an_attention_block_fire_exactly() -> None:
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")

    def lif(threshold: float = 1.0) -> nn.Module:
        return sj_neuron.LIFNode(tau=2.0, v_threshold=threshold)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.embed_lif = nn.Linear(8, 8), lif()
            self.block = Attention(8, 2, "sdsa", neuron=lif)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(self.embed_lif(self.embed(x)))

    net = dyadic_(Net(), seed=10, lo=-6, hi=8, bits=2)
    for i, m in enumerate(mod for mod in net.modules() if isinstance(mod, nn.BatchNorm1d)):
        exact_bn_(m, 10 + i)
    net.eval()
    x = spikes((4, 6, 8), 3, p=0.6)
    ticket = import_module(net, x, timesteps=T)
    want = run_torch(net, x, T)
    assert min(float(s.mean()) for s in want.values()) > 0.02
    for target in TARGETS:
        res = slt.run(ticket, x.numpy(), target=target, record=True)
        for path, spikes_torch in want.items():
            np.testing.assert_array_equal(res.layers[path], spikes_torch, err_msg=f"{target}: {path}")
