"""Token and attention node kinds: validation, reference rules, .slt format version 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import ticket_and_input, tickets

import slt_deploy as slt
from slt_deploy.errors import SltFormatError, SltUnsupportedError, SltValidationError
from slt_deploy.format import deserialize, serialize
from slt_deploy.format.container import assemble
from slt_deploy.format.schema import ticket_to_graph
from slt_deploy.ir import (
    LIF,
    Edge,
    Encoding,
    Input,
    MatMul,
    Mul,
    Output,
    Reduce,
    Reshape,
    Select,
    Ticket,
    Transpose,
    tickets_equal,
)
from slt_deploy.reference import simulate


def _header(data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n])


def _attention_ticket(variant: str = "ssa") -> Ticket:
    """Spike tokens (4 tokens, 2 heads of 3): q = k = v = the input seen per head."""
    nodes = [Input("in", shape=(4, 6)), Reshape("heads", shape=(4, 2, 3)), Transpose("q", perm=(1, 0, 2))]
    edges = [Edge("in", "heads"), Edge("heads", "q")]
    if variant == "ssa":
        nodes += [Transpose("kt", perm=(1, 2, 0)), MatMul("qk", scale=0.125), MatMul("qkv")]
        edges += [Edge("heads", "kt"), Edge("q", "qk"), Edge("kt", "qk"), Edge("qk", "qkv"), Edge("q", "qkv")]
    else:
        nodes += [Mul("kv"), Reduce("sum", axis=1, op="sum", keepdims=True), Mul("qkv")]
        edges += [Edge("q", "kv"), Edge("q", "kv"), Edge("kv", "sum"), Edge("q", "qkv"), Edge("sum", "qkv")]
    nodes += [LIF("att", shape=(2, 4, 3), threshold=0.5), Output("out")]
    edges += [Edge("qkv", "att"), Edge("att", "out")]
    return Ticket(tuple(nodes), tuple(edges), 3, Encoding("spikes"))


def test_nodes_validate_their_shapes_and_name_themselves() -> None:
    with pytest.raises(SltValidationError, match="node 'r'.*cannot reshape"):
        Reshape("r", shape=(5,)).out_shape([(2, 3)])
    with pytest.raises(SltValidationError, match="node 't'.*not a permutation"):
        Transpose("t", perm=(0, 0))
    with pytest.raises(SltValidationError, match="node 's'.*strictly increasing"):
        Select("s", axis=0, indices=(2, 1))
    with pytest.raises(SltValidationError, match="node 's'.*outside axis"):
        Select("s", axis=0, indices=(0, 4)).out_shape([(4, 2)])
    with pytest.raises(SltValidationError, match="node 'm'.*power of two"):
        MatMul("m", scale=0.3)
    with pytest.raises(SltValidationError, match="node 'm'.*cannot multiply"):
        MatMul("m").out_shape([(2, 3, 4), (2, 3, 4)])
    with pytest.raises(SltValidationError, match="node 'p'.*do not broadcast"):
        Mul("p").out_shape([(2, 3), (3, 3)])
    with pytest.raises(SltValidationError, match="node 'red'.*op must be"):
        Reduce("red", op="max")
    assert MatMul("m", scale=0.125).out_shape([(2, 4, 3), (2, 3, 5)]) == (2, 4, 5)
    assert Mul("p").out_shape([(2, 4, 3), (2, 1, 3)]) == (2, 4, 3)
    assert Reduce("red", axis=1, keepdims=True).out_shape([(2, 4, 3)]) == (2, 1, 3)
    assert Select("s", axis=1, indices=(0, 2)).out_shape([(3, 4)]) == (3, 2)


@pytest.mark.parametrize("variant", ["ssa", "sdsa"])
def test_reference_attention_counts_coincidences_exactly(variant: str) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((3, 2, 4, 6)) < 0.5).astype(np.float32)
    ticket = _attention_ticket(variant)
    res = simulate(ticket, x, record=True)
    q = x.reshape(3, 2, 4, 2, 3).transpose(0, 1, 3, 2, 4).astype(np.int64)  # (T, batch, heads, tokens, dh)
    if variant == "ssa":
        want = (q @ q.swapaxes(-1, -2)) @ q * 0.125  # integer counts, scaled by 2^-3: exact
    else:
        want = q * (q * q).sum(axis=-2, keepdims=True)
    np.testing.assert_array_equal(res.layers["qkv"], want.astype(np.float32))
    assert res.spiking and res.output.shape == (3, 2, 2, 4, 3)


def test_reduce_mean_is_the_exact_sum_rounded_once_then_divided() -> None:
    x = np.array([[[1e8, 1.0, -1e8]]], np.float32)  # float32 left to right would lose the 1.0
    nodes = (Input("in", shape=(1, 3)), Reduce("m", axis=1, op="mean"), Output("out"))
    ticket = Ticket(nodes, (Edge("in", "m"), Edge("m", "out")), 1)
    assert simulate(ticket, x).output[0, 0, 0] == np.float32(1.0) / np.float32(3.0)


def test_select_keeps_the_listed_tokens() -> None:
    nodes = (Input("in", shape=(5, 2)), Select("keep", axis=0, indices=(1, 3, 4)), Output("out"))
    ticket = Ticket(nodes, (Edge("in", "keep"), Edge("keep", "out")), 1)
    x = np.arange(10, dtype=np.float32).reshape(1, 5, 2)
    np.testing.assert_array_equal(simulate(ticket, x).output[0], x[:, [1, 3, 4]])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticket=tickets(families=("attention",)))
def test_attention_tickets_round_trip_through_slt_version_2(ticket: Ticket) -> None:
    data = serialize(ticket)
    assert _header(data)["__metadata__"]["format_version"] == "2"
    assert tickets_equal(deserialize(data), ticket)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=ticket_and_input(families=("attention",)))
def test_attention_tickets_run_on_the_reference(case) -> None:
    ticket, x = case
    res = simulate(ticket, x, record=True)
    assert res.output.shape[0] == ticket.timesteps
    assert set(res.layers) == set(ticket.order)


def test_tickets_without_token_kinds_stay_version_1_and_v1_files_refuse_token_kinds() -> None:
    plain = Ticket((Input("in", shape=(2, 3)), Output("out")), (Edge("in", "out"),), 1)
    assert _header(serialize(plain))["__metadata__"]["format_version"] == "1"
    graph, tensors = ticket_to_graph(_attention_ticket())
    data = assemble(graph, tensors)
    n = int.from_bytes(data[:8], "little")
    forged = data.replace(b'"format_version":"2"', b'"format_version":"1"')
    assert forged != data and len(forged) == len(data) and n
    with pytest.raises(SltFormatError, match=r"node 'heads': node kind 'reshape' needs .slt format version 2"):
        deserialize(forged)
    future = data.replace(b'"format_version":"2"', b'"format_version":"3"')
    with pytest.raises(SltFormatError, match="format version '3'; this slt-deploy reads versions 1, 2"):
        deserialize(future)


@pytest.mark.parametrize("fmt", ["nir", "c"])
def test_formats_without_attention_refuse_it_naming_the_node(fmt: str, tmp_path) -> None:
    with pytest.raises(SltUnsupportedError, match=r"node '\w+' \(\w+\): .*(NIR 1.0 has no|no kernels for)"):
        slt.export(_attention_ticket(), tmp_path / "out", fmt)
