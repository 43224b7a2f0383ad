"""What users expect from the importer without reading the docs first (issue: the user's own model).

- float32 weights that already are binary (every kept weight of a channel is ±α) are stored as binary
  without --binarize, only where that computes the same spikes (integer inputs), and the spikes stay equal;
- a whole spike train as example_input, a tutorial-style model with its own time loop and an unknown
  keyword each get a one-line error that says what to do.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slt_deploy as slt
from slt_deploy.errors import SltError, SltImportError
from slt_deploy.ir import LIF, BinaryWeights, Encoding, FloatWeights, Linear, sequential
from slt_deploy.ir.transforms import binary_form, store_binary_where_exact
from slt_deploy.reference import simulate

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
nn = torch.nn


def _binary_valued(rng: np.random.Generator, shape: tuple[int, ...], density: float) -> np.ndarray:
    alpha = rng.uniform(0.05, 1.5, shape[0]).astype(np.float32)
    signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    keep = rng.random(shape) < density
    return np.where(keep, signs * alpha.reshape(-1, *([1] * (len(shape) - 1))), 0.0).astype(np.float32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.05, 1.0), encoding=st.sampled_from(["direct", "rate"]))
def test_already_binary_layers_on_integer_inputs_are_stored_binary_with_the_same_spikes(seed, density, encoding):
    rng = np.random.default_rng(seed)
    w1, w2 = _binary_valued(rng, (12, 9), density), _binary_valued(rng, (4, 12), density)
    ticket = sequential((9,), [Linear("fc1", FloatWeights(w1 != 0, w1), rng.uniform(-0.2, 0.2, 12)),
                               LIF("lif1", shape=(12,), beta=0.875), Linear("fc2", FloatWeights(w2 != 0, w2)),
                               LIF("lif2", shape=(4,), beta=0.5)], 6,
                        Encoding(encoding, 7 if encoding == "rate" else None))
    stored, changed = store_binary_where_exact(ticket)
    # fc2 sees spikes: binary; fc1 sees analog values under direct input (two roundings): stays float32
    assert changed == (["fc1", "fc2"] if encoding == "rate" else ["fc2"])
    assert isinstance(stored.node("fc2").weights, BinaryWeights)
    x = rng.uniform(0, 1, (5, 9)).astype(np.float32)
    a, b = simulate(ticket, x), simulate(stored, x)
    for name in a.layers:
        np.testing.assert_array_equal(a.layers[name], b.layers[name], err_msg=name)


def test_binary_form_is_bit_exact_or_nothing() -> None:
    w = np.array([[0.5, -0.5, 0.0], [0.25, 0.0, -0.25]], np.float32)
    b = binary_form(FloatWeights(w != 0, w))
    assert b is not None and b.alpha.tolist() == [0.5, 0.25]
    w[1, 0] = np.nextafter(np.float32(0.25), np.float32(1))
    assert binary_form(FloatWeights(w != 0, w)) is None


def test_from_torch_stores_an_already_binary_snntorch_layer_as_binary() -> None:
    net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.875, init_hidden=True), nn.Linear(8, 3, bias=False),
                        snn.Leaky(beta=0.875, init_hidden=True))
    rng = np.random.default_rng(3)
    with torch.no_grad():
        net[2].weight.copy_(torch.from_numpy(_binary_valued(rng, (3, 8), 0.6)))
    ticket = slt.from_torch(net, torch.zeros(2, 6), timesteps=4)
    assert isinstance(ticket.node(ticket.order[3]).weights, BinaryWeights)
    assert isinstance(ticket.synapse_layers()[0].weights, FloatWeights)  # analog first layer stays float
    assert ticket.metadata["stored_binary"] == ticket.order[3]


def test_a_spike_train_as_example_input_says_give_one_step() -> None:
    net = nn.Sequential(nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(SltImportError, match=r"give example_input\[0\]"):
        slt.from_torch(net, torch.zeros(5, 2, 16))


def test_a_tutorial_style_time_loop_says_write_one_step() -> None:
    class Tutorial(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(16, 20), snn.Leaky(beta=0.9)

        def forward(self, x):
            mem1 = self.lif1.init_leaky()
            spikes = []
            for _ in range(5):
                spk1, mem1 = self.lif1(self.fc1(x), mem1)
                spikes.append(spk1)
            return torch.stack(spikes)

    with pytest.raises(SltError, match="init_hidden=True") as info:
        slt.from_torch(Tutorial(), torch.zeros(2, 16))
    assert "\n" not in str(info.value) and "own time loop" in str(info.value)


def test_unknown_keywords_are_one_line_errors_with_a_suggestion() -> None:
    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True))
    with pytest.raises(SltImportError, match="did you mean 'timesteps'"):
        slt.from_torch(net, torch.zeros(1, 4), timestep=4)
