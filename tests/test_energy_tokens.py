"""The full energy report on spiking transformers: attention, token masks, every variant and view.

Counts are checked against hand-computed values on a tiny ticket (4 tokens, 2 kept) and, on
the committed MultiSp example, against the independent per-layer counter
(:func:`slt_deploy.energy.attention.attention_energy`) and the CLI's renderings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import slt_deploy as slt
from slt_deploy.cli import app
from slt_deploy.energy import energy
from slt_deploy.energy.attention import attention_energy
from slt_deploy.energy.profiles import load_profile
from slt_deploy.energy.tokenops import full_shapes, token_factors
from slt_deploy.ir.graph import Edge, Encoding, Ticket
from slt_deploy.ir.neurons import LIF
from slt_deploy.ir.nodes import Input, Output
from slt_deploy.ir.tokens import MatMul, Reshape, Select, Transpose

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "spikformer" / "digits-spikformer-multisp.slt"


def _tiny() -> Ticket:
    """4 spike tokens of 2 features, tokens 0 and 2 kept; A = Q·Kᵀ with Q = K = the kept tokens."""
    nodes = (Input("in", shape=(4, 2)), Select("keep", axis=0, indices=(0, 2)), Transpose("kt", perm=(1, 0)),
             MatMul("qk"), Reshape("flat", shape=(4,)), LIF("att", shape=(4,), threshold=0.5), Output("out"))
    edges = (Edge("in", "keep"), Edge("keep", "kt"), Edge("keep", "qk"), Edge("kt", "qk"), Edge("qk", "flat"),
             Edge("flat", "att"), Edge("att", "out"))
    return Ticket(nodes, edges, 2, Encoding("spikes"))


# step 0: kept tokens [[1,0],[1,1]]: columns of Q have 2 and 1 spikes, rows of Kᵀ the same: 2·2 + 1·1 = 5
# step 1: kept tokens [[0,1],[0,1]]: 0·0 + 2·2 = 4          -> 9 coincidences per inference (one sample)
X = np.array([[[[1, 0], [0, 0], [1, 1], [0, 1]]], [[[0, 1], [1, 1], [0, 1], [0, 0]]]], np.float32)


def test_token_factors_follow_the_token_axis_through_views_and_products() -> None:
    t = _tiny()
    full = full_shapes(t)
    assert full is not None and full["keep"] == (4, 2) and full["kt"] == (2, 4) and full["qk"] == (4, 4)
    assert full["flat"] == (16,) and full["att"] == (16,)
    factors, followed = token_factors(t)
    assert followed and factors["qk"] == 4.0 and factors["att"] == 4.0  # Q·Kᵀ: both token axes double


def test_attention_in_the_full_report_hand_counted() -> None:
    r = energy(_tiny(), X, convention="memory-aware")
    fp32 = load_profile("cmos45-fp32")
    qk = r.counts.synapse("qk")
    assert qk.ac == 9 and qk.mac == 0 and qk.is_op and qk.kept_macs == 2 * 2 * 2
    assert qk.buffer_values == 4 and qk.buffer_binary and qk.token_factor == 4.0
    assert r.effective_ac == 9 and r.effective_mac == 0
    # the dense SNN and the all-tokens ticket keep every token: 4x the work, 4x the neurons
    assert r.variant("dense-snn").ac == 36 and r.variant("all-tokens").ac == 36
    assert r.variant("dense-snn").neurons[0].neurons == 16
    # the ANN twin: real-valued Q·Kᵀ over all 4 tokens, MACs; operands are the input (not ReLU outputs): dense
    assert r.variant("ann-dense").mac == 4 * 2 * 4 and r.variant("ann").mac == 32
    # memory: Kᵀ buffered as 4 spikes = 1 byte, written + read at each of T = 2 steps, one 64-bit SRAM word each
    e = r.energies["memory-aware"]
    assert e["sparse-binary" if r.ticket.key == "sparse-binary" else r.ticket.key]["qk"].memory == 2 * 2 * 10.0
    # the ANN buffers Kᵀ of all tokens as 8 fp32 values = 32 bytes = 4 words, written + read once
    assert e["ann"]["qk"].memory == 2 * 4 * 10.0
    assert r.total("ticket" if r.ticket.key == "ticket" else r.ticket.key, "neurobench") == 9 * fp32.pj("ac")
    tokens = {row["name"]: row for row in r.token_rows()}
    assert tokens["qk"]["tokens"] == 2 and tokens["qk"]["ops_per_token"] == 4.5
    assert tokens["qk"]["all_tokens_ops"] == 36
    d = r.to_dict()
    assert d["tokens"]["token_mask"] and {"keep", "kt", "flat"} <= {z["name"] for z in d["zero_op_layers"]}
    assert any(v["key"] == "all-tokens" for v in d["variants"])


def test_per_head_counts_and_reduce_in_the_report() -> None:
    from test_tokens import _attention_ticket

    rng = np.random.default_rng(5)
    x = (rng.random((3, 4, 4, 6)) < 0.4).astype(np.float32)
    for variant in ("ssa", "sdsa"):
        t = _attention_ticket(variant)
        r = energy(t, x)
        ref = {layer.name: layer for layer in attention_energy(t, x).layers}
        for s in r.counts.synapses:  # the two counters agree layer by layer
            assert (s.ac / 4, s.mac / 4) == (ref[s.name].ac, ref[s.name].mac)
        if variant == "ssa":
            heads = r.counts.synapse("qk").heads / 4
            assert tuple(heads) == ref["qk"].per_head and len(heads) == 2
        else:
            s = r.counts.synapse("sum")
            ann = {w.name: w for w in r.variant("ann").layers}
            assert s.mac == 0 and ann["sum"].mac == 0 and ann["sum"].ac > 0  # the ANN's token sum adds too


def test_slt_energy_on_the_multisp_example_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from sklearn.datasets import load_digits

    x = (load_digits().images[:24] / 16.0).astype(np.float32)[:, None]
    np.save(tmp_path / "x.npy", x)
    ticket = slt.load(EXAMPLE)
    ref = attention_energy(ticket, x)
    for convention in ("neurobench", "spikformer", "memory-aware"):
        res = CliRunner().invoke(app, ["energy", str(EXAMPLE), "--input", str(tmp_path / "x.npy"), "--json",
                                       "--convention", convention])
        assert res.exit_code == 0, res.output
        d = json.loads(res.stdout)
        per = d["per_inference"]
        assert per["effective_ac"] == pytest.approx(ref.ac) and per["effective_mac"] == pytest.approx(ref.mac)
        layers = {layer["name"]: layer for layer in d["layers"]}
        assert len(layers["matmul"]["per_head"]) == 2 and layers["matmul"]["buffer_spikes"]
        assert layers["mean"]["effective_mac"] == 0 and layers["blocks.0.q.fc"]["token_factor"] == 2.0
        keys = [v["key"] for v in d["variants"]]
        assert {"ann-dense", "ann", "dense-snn", "all-tokens"} <= set(keys)
    if convention == "spikformer":
        assert d["views"][0]["name"] == "spikformer"
    res = CliRunner().invoke(app, ["energy", str(EXAMPLE), "--input", str(tmp_path / "x.npy"),
                                   "--report", str(tmp_path / "e.html"), "--figures", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    assert "per token and head" in res.stdout and "all tokens" in res.stdout
    html = (tmp_path / "e.html").read_text()
    assert "Per token and head" in html and html.count("<svg") >= 5
    assert {p.name for p in (tmp_path / "figs").iterdir()} >= {"layers.svg", "savings.pdf", "breakeven.svg"}
