"""Energy of spiking attention: coincidence counts, per head and per token, both conventions."""

from __future__ import annotations

import itertools

import numpy as np
from test_tokens import _attention_ticket

from slt_deploy.energy.attention import attention_energy
from slt_deploy.energy.profiles import load_profile
from slt_deploy.reference import simulate


def test_spike_matmul_counts_coincidences_per_head_as_acs() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((3, 2, 4, 6)) < 0.4).astype(np.float32)
    ticket = _attention_ticket("ssa")
    e = attention_energy(ticket, x)
    rec = simulate(ticket, x, record=True).layers
    qk = next(layer for layer in e.layers if layer.name == "qk")
    a, b = rec["q"], rec["kt"]  # (T, B, heads, tokens, dh), (T, B, heads, dh, tokens)
    brute = np.zeros(2)
    for t, s, h in itertools.product(range(3), range(2), range(2)):
        for i, k, j in itertools.product(range(4), range(3), range(4)):
            brute[h] += bool(a[t, s, h, i, k]) and bool(b[t, s, h, k, j])
    assert qk.ac == brute.sum() / 2 and qk.mac == 0
    assert qk.per_head == tuple(brute / 2)
    assert qk.flops == 2 * 4 * 3 * 4 and qk.tokens == 4
    # the second product multiplies 0.125-scaled counts: not binary, so MACs
    qkv = next(layer for layer in e.layers if layer.name == "qkv")
    assert qkv.ac == 0 and qkv.mac > 0
    fp32 = load_profile("cmos45-fp32")
    assert qk.energy_pj["neurobench"] == fp32.pj("ac") * qk.ac
    rate = np.count_nonzero(a) / a.size
    assert np.isclose(qk.energy_pj["spikformer"], fp32.pj("ac") * rate * 3 * qk.flops)


def test_sdsa_products_and_token_sums_are_accumulates() -> None:
    rng = np.random.default_rng(4)
    x = (rng.random((3, 3, 4, 6)) < 0.5).astype(np.float32)  # (T, batch, tokens, features)
    ticket = _attention_ticket("sdsa")
    e = {layer.name: layer for layer in attention_energy(ticket, x).layers}
    rec = simulate(ticket, x, record=True).layers
    assert e["kv"].ac == np.count_nonzero(rec["kv"]) / 3  # q ⊙ q: the AND of spikes
    assert e["sum"].ac == np.count_nonzero(rec["kv"]) / 3 and e["sum"].mac == 0
    assert e["qkv"].ac + e["qkv"].mac == np.count_nonzero((rec["q"] != 0) & (rec["sum"] != 0)) / 3
