"""NIR export/import, checked with the real ``nir``, ``h5py``, snnTorch and nirtorch packages.

- slt -> .nir -> slt is bit-identical (``tickets_equal``) for binary, int8 and float tickets,
  MLP, conv, residual and recurrent graphs (hypothesis) whenever the exporter accepts them;
- a ticket exported to NIR and loaded by snnTorch's ``import_from_nir`` fires the
  reference's spikes, every step and neuron (dyadic weights and spike inputs keep the float
  sums exact), and reading only the standard NIR fields gives the same ticket semantics;
- snnTorch models exported by ``snntorch.export_nir.export_to_nir`` import into slt and
  reproduce snnTorch's own spikes;
- snnTorch ``Leaky`` MLP and conv nets with snnTorch's defaults (nn.Linear/Conv2d biases, float
  weights) trained-like on real digits: with reset_mechanism="zero" they export exactly and
  snnTorch's ``import_from_nir`` fires every spike of the reference; with the default subtract
  reset the export is refused with a message naming snnTorch's reader and --allow-approximate;
- what NIR or snnTorch cannot state is refused (or reported with --allow-approximate);
- damaged or hostile files give one typed, one-line error; the CLI exits 2 on them.

Norse is not tested: ``pip install norse`` pulls torch 2.15, torchvision and CUDA here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")

from slt_deploy.exporters.nir import export_nir, from_nir_graph, import_nir, to_nir_graph  # noqa: E402
from slt_deploy.exporters.nir._common import beta_from_tau, tau64_for_beta, tau_for_beta  # noqa: E402
from strategies import tickets  # noqa: E402

import slt_deploy as slt  # noqa: E402
from slt_deploy.errors import SltError, SltFormatError, SltImportError, SltUnsupportedError  # noqa: E402
from slt_deploy.ir import (  # noqa: E402
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
    sequential,
    tickets_equal,
)
from slt_deploy.reference import simulate  # noqa: E402

T = 12


# ====================================================================== helpers
def dyadic(rng: np.random.Generator, shape: tuple[int, ...], k: int = 8, bits: int = 4) -> np.ndarray:
    return (rng.integers(-k, k + 1, shape) / 2**bits).astype(np.float32)


def weights(kind: str, rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    mask = rng.random(shape) < 0.7
    if kind == "binary":
        return BinaryWeights(mask, rng.random(shape) < 0.5, (rng.integers(1, 5, shape[0]) / 8).astype(np.float32))
    if kind == "int8":
        return Int8Weights(mask, rng.integers(-8, 9, shape), np.float32(1 / 32))
    return FloatWeights(mask, dyadic(rng, shape))


def mlp(kind: str, seed: int = 0, timesteps: int = T) -> Ticket:
    rng = np.random.default_rng(seed)
    return sequential((10,), [
        Linear("fc1", weights(kind, rng, (12, 10)), dyadic(rng, (12,), 2)),
        LIF("lif1", shape=(12,), beta=np.float32(0.75), threshold=0.25),
        Linear("fc2", weights(kind, rng, (4, 12))),
        LIF("lif2", shape=(4,), beta=np.array([0.5, 0.875, 0.9375, 0.0], np.float32), threshold=0.125,
            bias=dyadic(rng, (4,), 2)),
    ], timesteps, Encoding("spikes"))


def conv(kind: str, seed: int = 0, timesteps: int = T) -> Ticket:
    rng = np.random.default_rng(seed)
    return sequential((2, 6, 6), [
        Conv2d("conv", weights(kind, rng, (3, 2, 3, 3)), dyadic(rng, (3,), 2), padding=(1, 1)),
        LIF("lif1", shape=(3, 6, 6), beta=0.875, threshold=0.375),
        AvgPool2d("pool", kernel_size=2),
        Flatten("flat"),
        Linear("fc", weights(kind, rng, (5, 27))),
        LIF("lif2", shape=(5,), beta=0.5, threshold=0.0625),
    ], timesteps, Encoding("spikes"))


def spikes(shape: tuple[int, ...], seed: int, p: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float32)


def quiet(fn: Any, *args: Any) -> Any:
    """snnTorch's importer prints progress lines; keep the test output clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def need_snntorch() -> None:
    """snnTorch's NIR bridge needs snntorch and nirtorch (pip install nirtorch; keeps torch as is)."""
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")


def snntorch_from_nir(graph: Any) -> Any:
    need_snntorch()
    from snntorch.import_nir import import_from_nir

    return quiet(import_from_nir, graph)


def run_graph_module(module: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Step a nirtorch GraphModule T times; spikes of every snnTorch Leaky, (T, batch, *shape)."""
    import snntorch as snn
    import torch

    leaky = {n: m for n, m in module.named_modules() if isinstance(m, snn.Leaky)}
    rec: dict[str, list[np.ndarray]] = {n: [] for n in leaky}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: rec[n].append(o.detach().numpy().copy()))
             for n, m in leaky.items()]
    for m in leaky.values():
        m.reset_mem()
    state = None
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = module(torch.from_numpy(x[t]), state)
    for h in hooks:
        h.remove()
    return {n: np.stack(v) for n, v in rec.items()}


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


def with_encoding(ticket: Ticket, encoding: Encoding, timesteps: int | None = None) -> Ticket:
    return Ticket(ticket.nodes, ticket.edges, timesteps or ticket.timesteps, encoding, ticket.metadata)


# ====================================================================== round trips
@pytest.mark.parametrize("build", [mlp, conv])
@pytest.mark.parametrize("kind", ["binary", "int8", "float32"])
def test_file_round_trip_is_bit_identical(build: Any, kind: str, tmp_path: Path) -> None:
    ticket = build(kind)
    report = export_nir(ticket, tmp_path / "m.nir")
    assert report["exact"] and report["approximations"] == [] and report["bytes"] == (tmp_path / "m.nir").stat().st_size
    back = import_nir(tmp_path / "m.nir")
    assert tickets_equal(ticket, back)
    assert tickets_equal(ticket, slt.api.load_any(tmp_path / "m.nir"))


def test_binary_edge_cases_survive_zero_and_negative_alpha_and_kept_zero_codes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((6, 5)) < 0.6
    mask[1] = False  # an empty channel
    binary = BinaryWeights(mask, rng.random((6, 5)) < 0.5,
                           np.array([0.5, 0.0, -0.0, -0.25, 1e-45, 3.0], np.float32))
    q = rng.integers(-128, 128, (3, 6)).astype(np.int8)
    q[0, :3] = 0  # kept weights with code 0: invisible in the dense matrix
    int8 = Int8Weights(np.ones((3, 6), bool), q, np.array([0.0, 1e-45, 1e36], np.float32))
    floats = FloatWeights(np.ones((2, 3), bool), np.array([[0.0, -0.0, 1e-40], [1.5, -2.0, 0.0]], np.float32))
    ticket = sequential((5,), [Linear("a", binary), LIF("la", shape=(6,), beta=0.5),
                               Linear("b", int8), LIF("lb", shape=(3,), beta=1.0),
                               Linear("c", floats), LI("lc", shape=(2,), beta=1.0)], 3)
    export_nir(ticket, tmp_path / "e.nir")
    assert tickets_equal(ticket, import_nir(tmp_path / "e.nir"))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(tickets(max_timesteps=3))
def test_random_tickets_round_trip_exactly_when_exportable(ticket: Ticket) -> None:
    """Every family and weight kind; the metadata restores even what the NIR fields approximate."""
    try:
        graph = to_nir_graph(ticket, allow_approximate=True)
    except SltUnsupportedError as exc:
        one_line(exc)
        assume(False)  # MaxPool2d, or a neuron bias with no synapse to fold into
    assert tickets_equal(ticket, from_nir_graph(graph))
    buf = io.BytesIO()
    nir.write(buf, graph)
    with open_bytes(buf.getvalue()) as path:
        assert tickets_equal(ticket, import_nir(path))


@contextlib.contextmanager
def open_bytes(data: bytes) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.nir")
        with open(path, "wb") as f:
            f.write(data)
        yield path


def test_residual_and_recurrent_graphs_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    inp, fa, la = Input("in", shape=(4,)), Linear("fa", weights("binary", rng, (6, 4))), LIF("la", shape=(6,), beta=0.5)
    fb, lb = Linear("fb", weights("float32", rng, (6, 6))), LIF("lb", shape=(6,), beta=0.75)
    add, fo, lo = Add("add"), Linear("fo", weights("int8", rng, (3, 6))), LIF("lo", shape=(3,), beta=0.5)
    rec, join = Linear("rec", weights("binary", rng, (6, 6))), Add("join")
    edges = [Edge("in", "fa"), Edge("fa", "join"), Edge("rec", "join"), Edge("join", "la"),
             Edge("la", "rec", recurrent=True), Edge("la", "fb"), Edge("fb", "lb"), Edge("lb", "add"),
             Edge("la", "add"), Edge("add", "fo"), Edge("fo", "lo"), Edge("lo", "out")]
    ticket = Ticket((inp, fa, la, fb, lb, add, fo, lo, rec, join, Output("out")), tuple(edges), 5)
    report = export_nir(ticket, tmp_path / "r.nir")
    assert report["exact"]
    assert any("RLeaky" in n for n in report["consumer_notes"])
    graph = nir.read(tmp_path / "r.nir", type_check=False)
    assert sorted(graph.edges) == sorted([("in", "fa"), ("fa", "la"), ("rec", "la"), ("la", "rec"), ("la", "fb"),
                                          ("fb", "lb"), ("lb", "fo"), ("la", "fo"), ("fo", "lo"), ("lo", "out")])
    assert tickets_equal(ticket, import_nir(tmp_path / "r.nir"))
    # Without the slt metadata, the cycle is broken at the edge leaving the neuron and the two
    # joins become Add nodes: the same spikes (dyadic values, spike input).
    foreign = from_nir_graph(strip(graph), timesteps=5)
    assert [e for e in foreign.edges if e.recurrent] == [Edge("la", "rec", recurrent=True)]
    x = spikes((8, 4), 1)
    want = simulate(ticket, x).output
    got = simulate(with_encoding(foreign, Encoding("direct")), x).output
    assert np.array_equal(want, got)


def test_rlif_without_leak_round_trips(tmp_path: Path) -> None:
    """An RLIF with beta = 1 is written as a NIR IF (no leak); slt's reader must take it back as
    the RLIF its metadata names (found by the random-ticket property test)."""
    from slt_deploy.ir.neurons import RLIF

    rng = np.random.default_rng(3)
    nodes = (Input("in", shape=(3,)), Linear("fc", weights("binary", rng, (2, 3))),
             RLIF("r", shape=(2,), beta=1.0, threshold=0.9), Linear("rec", weights("binary", rng, (2, 2))),
             Output("out"))
    edges = (Edge("in", "fc"), Edge("fc", "r"), Edge("rec", "r"), Edge("r", "rec", recurrent=True), Edge("r", "out"))
    ticket = Ticket(nodes, edges, 3)
    export_nir(ticket, tmp_path / "r.nir", allow_approximate=True)
    assert type(nir.read(tmp_path / "r.nir", type_check=False).nodes["r"]).__name__ == "IF"
    assert tickets_equal(ticket, import_nir(tmp_path / "r.nir"))


def strip(graph: Any) -> Any:
    """The same graph without any slt metadata: what a file from another tool looks like."""
    for node in graph.nodes.values():
        node.metadata = {}
    graph.metadata = {}
    return graph


def test_dt_is_stored_and_read_back(tmp_path: Path) -> None:
    ticket = mlp("float32")
    report = export_nir(ticket, tmp_path / "m.nir", dt=1e-3)
    assert report["dt"] == 1e-3 and any("dt = 1e-4" in n for n in report["consumer_notes"])
    graph = nir.read(tmp_path / "m.nir", type_check=False)
    assert float(graph.metadata["dt"]) == 1e-3
    lif = graph.nodes["lif1"]
    assert np.array_equal(beta_from_tau(lif.tau, 1e-3), np.full(12, 0.75, np.float32))
    # foreign reading picks dt up from the graph metadata
    foreign = from_nir_graph(strip_ticket_key(graph))
    assert np.array_equal(foreign.node("lif1").beta, ticket.node("lif1").beta)
    with pytest.raises(SltImportError, match="gain"):
        from_nir_graph(graph, dt=2e-3)
    with pytest.raises(SltError, match="positive"):
        export_nir(ticket, tmp_path / "x.nir", dt=0.0)


def strip_ticket_key(graph: Any) -> Any:
    graph.metadata = {k: v for k, v in graph.metadata.items() if k != "slt.ticket"}
    return graph


def test_beta_parametrisation_is_exact_in_float32_where_possible() -> None:
    rng = np.random.default_rng(0)
    beta = np.concatenate([rng.random(4000), [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]]).astype(np.float32)
    tau, exact = tau_for_beta(beta, 1e-4)
    assert tau.dtype == np.float32 and np.array_equal(beta_from_tau(tau, 1e-4)[exact], beta[exact])
    assert exact[beta >= 0.5].mean() > 0.95 and exact[-6:].all()
    # snnTorch's own export tau = dt/(1 - beta) loses beta far more often
    naive = (np.float32(1e-4) / (np.float32(1) - beta[:-1])).astype(np.float32)
    assert (beta_from_tau(naive, 1e-4) != beta[:-1]).mean() > 0.2


def test_betas_without_a_float32_tau_are_written_with_a_float64_tau(tmp_path: Path) -> None:
    """snnTorch computes 1 - dt/tau in the file's dtype and rounds to float32 once: a float64 tau reaches
    every float32 beta in [0, 1), so the layers whose betas have no float32 tau are written in float64."""
    rng = np.random.default_rng(5)
    beta = np.concatenate([rng.random(2000), [0.0, 0.04097352, 0.1, 0.2, 0.4, 1e-8, 0.99999994]]).astype(np.float32)
    assert not tau_for_beta(beta, 1e-4)[1].all()
    tau, exact = tau64_for_beta(beta, 1e-4)
    assert tau.dtype == np.float64 and exact.all() and np.array_equal(beta_from_tau(tau, 1e-4), beta)
    n = 4
    ticket = sequential((3,), [Linear("fc", weights("float32", np.random.default_rng(0), (n, 3))),
                               LIF("lif", shape=(n,), beta=np.array([0.04097352, 0.2, 0.5, 0.9], np.float32)),
                               Linear("fc2", weights("float32", np.random.default_rng(1), (2, n))),
                               LIF("lif2", shape=(2,), beta=0.875)], 4)
    report = export_nir(ticket, tmp_path / "b.nir")
    assert report["exact"] and report["approximations"] == []
    graph = nir.read(tmp_path / "b.nir", type_check=False)
    assert graph.nodes["lif"].tau.dtype == np.float64 and graph.nodes["lif2"].tau.dtype == np.float32
    assert tickets_equal(ticket, import_nir(tmp_path / "b.nir"))
    foreign = from_nir_graph(strip(graph), timesteps=4)  # the standard fields alone give beta back too
    assert foreign.node("lif").beta.tobytes() == ticket.node("lif").beta.tobytes()


def test_beta_one_inside_a_leaky_layer_is_refused_unless_approximate(tmp_path: Path) -> None:
    ticket = sequential((3,), [Linear("fc", weights("float32", np.random.default_rng(0), (2, 3))),
                               LIF("lif", shape=(2,), beta=np.array([1.0, 0.5], np.float32))], 4)
    with pytest.raises(SltUnsupportedError, match="lif.*beta = 1") as info:
        export_nir(ticket, tmp_path / "b.nir")
    assert "--allow-approximate" in one_line(info.value) and "snnTorch import_from_nir" in str(info.value)
    assert not (tmp_path / "b.nir").exists()
    report = export_nir(ticket, tmp_path / "b.nir", allow_approximate=True)
    assert not report["exact"] and "beta = 1" in report["approximations"][0]
    assert tickets_equal(ticket, import_nir(tmp_path / "b.nir"))  # slt.beta keeps the exact value


# ====================================================================== snnTorch reads our files
@pytest.mark.parametrize("build", [mlp, conv])
@pytest.mark.parametrize("kind", ["binary", "int8", "float32"])
def test_snntorch_import_from_nir_fires_the_reference_spikes(build: Any, kind: str, tmp_path: Path) -> None:
    ticket = build(kind)
    export_nir(ticket, tmp_path / "m.nir")
    module = snntorch_from_nir(nir.read(tmp_path / "m.nir", type_check=False))
    batch = 3 if build is mlp else 1  # snnTorch builds Flatten(0, -1): conv graphs only run unbatched
    x = spikes((T, batch, *ticket.input_shape), 7)
    ref = simulate(ticket, x)
    got = run_graph_module(module, x)
    assert set(got) == {"lif1", "lif2"}
    for name in got:
        want = ref.layers[name]
        assert np.array_equal(got[name].reshape(want.shape), want), name
        assert 0 < want.sum() < want.size  # neither silent nor saturated


def test_snntorch_reads_every_beta_bit_for_bit(tmp_path: Path) -> None:
    """Random betas in [0, 1), float32 tau where one exists and float64 tau otherwise: snnTorch's
    import_from_nir gets each beta back bit for bit and fires the reference's spikes."""
    rng = np.random.default_rng(11)
    beta = np.concatenate([rng.random(60), [0.04097352, 0.2, 0.4, 0.0]]).astype(np.float32)
    for part in (beta[tau_for_beta(beta, 1e-4)[1]], beta):  # one layer with float32 tau, one with float64
        n = part.size
        ticket = sequential((n,), [Linear("fc", FloatWeights(np.eye(n, dtype=bool), np.eye(n, dtype=np.float32))),
                                   LIF("lif", shape=(n,), beta=part, threshold=0.5)], T, Encoding("spikes"))
        assert export_nir(ticket, tmp_path / "m.nir")["exact"]
        module = snntorch_from_nir(nir.read(tmp_path / "m.nir", type_check=False))
        got = module.get_submodule("lif").beta.detach().numpy()
        assert got.dtype == np.float32 and got.tobytes() == part.tobytes()
        x = spikes((T, 2, n), 3, p=0.8)
        assert np.array_equal(run_graph_module(module, x)["lif"], simulate(ticket, x).layers["lif"])


def test_standard_fields_alone_give_the_same_spikes(tmp_path: Path) -> None:
    """A NIR reader without slt's metadata (our foreign path) computes the same network."""
    for build, kind in [(mlp, "binary"), (conv, "int8"), (conv, "float32")]:
        ticket = build(kind)
        export_nir(ticket, tmp_path / "m.nir")
        foreign = from_nir_graph(strip(nir.read(tmp_path / "m.nir", type_check=False)), timesteps=T)
        assert all(isinstance(n.weights, FloatWeights) for n in foreign.synapse_layers())
        x = spikes((T, 2, *ticket.input_shape), 5)
        got = simulate(with_encoding(foreign, Encoding("spikes")), x)
        want = simulate(ticket, x)
        assert np.array_equal(got.output, want.output)
        for name in ("lif1", "lif2"):
            assert np.array_equal(got.layers[name], want.layers[name])


def test_subtract_reset_is_refused_and_snntorch_would_read_it_as_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ticket = sequential((6,), [Linear("fc", weights("float32", rng, (5, 6))),
                               LIF("lif", shape=(5,), beta=0.75, threshold=0.25, reset="subtract_delayed")],
                        T, Encoding("spikes"))
    with pytest.raises(SltUnsupportedError) as info:
        export_nir(ticket, tmp_path / "s.nir")
    assert "'lif'" in one_line(info.value) and "subtract_delayed" in str(info.value)
    assert "--allow-approximate" in str(info.value) and "allow_approximate=" not in str(info.value)
    assert "snnTorch import_from_nir" in str(info.value)  # the consumer that cannot run the exact form
    report = export_nir(ticket, tmp_path / "s.nir", allow_approximate=True)
    assert report["exact"] is False and "subtract_delayed" in report["approximations"][0]
    assert tickets_equal(ticket, import_nir(tmp_path / "s.nir"))
    module = snntorch_from_nir(nir.read(tmp_path / "s.nir", type_check=False))
    assert module.get_submodule("lif").reset_mechanism == "zero"
    x = spikes((T, 4, 6), 9, p=0.9)
    zero = LIF("lif", shape=(5,), beta=0.75, threshold=0.25, reset="zero")
    as_zero = sequential((6,), [ticket.node("fc"), zero], T, Encoding("spikes"))
    got = run_graph_module(module, x)["lif"]
    assert np.array_equal(got, simulate(as_zero, x).layers["lif"])
    assert not np.array_equal(got, simulate(ticket, x).layers["lif"])  # why it is refused


@pytest.mark.parametrize("variant", ["subtract", "none", "decay_input", "leaky_tau", "maxpool", "bias_after_pool",
                                     "sum_of_three", "add_to_output"])
def test_constructs_nir_cannot_state(variant: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fc = Linear("fc", weights("float32", rng, (4, 3)))
    approximate = True
    if variant in ("subtract", "none"):
        ticket = sequential((3,), [fc, LIF("lif", shape=(4,), beta=0.5, reset=variant)], 3)
    elif variant in ("decay_input", "leaky_tau"):
        ticket = sequential((3,), [fc, LIF("lif", shape=(4,), charge=variant, tau=2.0)], 3)
    elif variant in ("maxpool", "bias_after_pool"):
        pool = (MaxPool2d if variant == "maxpool" else SumPool2d)("pool", kernel_size=2)
        bias = None if variant == "maxpool" else 0.25
        ticket = sequential((1, 4, 4), [pool, LIF("lif", shape=(1, 2, 2), bias=bias)], 3)
        approximate = False
    else:
        a, b, c = (Linear(n, weights("float32", rng, (4, 3))) for n in "abc")
        nodes = [Input("in", shape=(3,)), a, b, c, Add("add"), Output("out")]
        edges = [Edge("in", "a"), Edge("in", "b"), Edge("in", "c"), Edge("a", "add"), Edge("b", "add")]
        if variant == "sum_of_three":
            nodes.insert(-1, LIF("lif", shape=(4,)))
            edges += [Edge("c", "add"), Edge("add", "lif"), Edge("lif", "out")]
        else:
            nodes.remove(c)
            edges = [e for e in edges if "c" not in (e.src, e.dst)] + [Edge("add", "out")]
            approximate = False
        ticket = Ticket(tuple(nodes), tuple(edges), 3)
    with pytest.raises(SltUnsupportedError) as info:
        export_nir(ticket, tmp_path / "x.nir")
    one_line(info.value)
    if approximate:
        report = export_nir(ticket, tmp_path / "x.nir", allow_approximate=True)
        assert report["approximations"] and not report["exact"]
        assert tickets_equal(ticket, import_nir(tmp_path / "x.nir"))
    else:
        with pytest.raises(SltUnsupportedError):
            export_nir(ticket, tmp_path / "x.nir", allow_approximate=True)
        assert not (tmp_path / "x.nir").exists()


# ====================================================================== snnTorch defaults, real data
def digits_images(n: int) -> np.ndarray:
    """The first ``n`` scikit-learn digits as images in [0, 1] (pixels/16), float32 (n, 1, 8, 8)."""
    from sklearn.datasets import load_digits

    return (load_digits().images[:n] / 16).astype(np.float32)[:, None]


def snntorch_default_net(arch: str, reset: str, beta: float) -> Any:
    """An snnTorch net as users write it: torch's default init and biases, scalar beta, threshold 1."""
    need_snntorch()
    import snntorch as snn
    import torch
    from torch import nn

    torch.manual_seed(3)

    def leaky(**kw: Any) -> Any:
        return snn.Leaky(beta=beta, init_hidden=True, reset_mechanism=reset, **kw)

    if arch == "mlp":
        layers = [nn.Flatten(), nn.Linear(64, 48), leaky(), nn.Linear(48, 10), leaky(output=True)]
    else:
        layers = [nn.Conv2d(1, 6, 3, padding=1), leaky(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(96, 10),
                  leaky(output=True)]
    model = nn.Sequential(*layers)
    with torch.no_grad():  # scale up so that every layer fires on digits at T = 12 (an untrained net barely does)
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(5.0)
    return model.eval()


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("beta", [0.9, 0.875, 0.5, 0.2])
def test_snntorch_default_nets_with_zero_reset_reach_snntorch_exactly(arch: str, beta: float, tmp_path: Path) -> None:
    """nn.Linear / nn.Conv2d biases and float weights as torch initialises them, digits images in [0, 1]:
    slt -> NIR -> snnTorch's own import_from_nir fires every spike of the reference."""
    import torch

    model = snntorch_default_net(arch, "zero", beta)
    x = digits_images(40 if arch == "mlp" else 12)
    ticket = slt.from_torch(model, torch.from_numpy(x[:1]), timesteps=T)
    assert all(n.bias is not None for n in ticket.synapse_layers())
    report = export_nir(ticket, tmp_path / "m.nir")
    assert report["exact"] and report["approximations"] == []
    module = snntorch_from_nir(nir.read(tmp_path / "m.nir", type_check=False))
    ref = simulate(ticket, x)
    names = [n.name for n in ticket.neuron_layers()]
    # snnTorch builds Flatten(0, -1) for NIR's Flatten, so graphs with a Flatten run one sample at a time
    got: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for sample in x:
        for name, spikes_ in run_graph_module(module, np.repeat(sample[None, None], T, axis=0)).items():
            got[name].append(spikes_.reshape(T, 1, -1))
    for name in names:
        want = ref.layers[name].reshape(T, len(x), -1)
        assert np.array_equal(np.concatenate(got[name], axis=1), want), name
        assert 0 < want.sum() < want.size, name  # neither silent nor saturated


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_snntorch_default_subtract_reset_is_refused_naming_snntorch(arch: str, tmp_path: Path) -> None:
    """snnTorch's default Leaky (reset_mechanism="subtract", reset_delay=True) has no NIR form that
    import_from_nir runs: the refusal says so, names the CLI flag, and writes nothing."""
    import torch

    model = snntorch_default_net(arch, "subtract", 0.9)
    ticket = slt.from_torch(model, torch.from_numpy(digits_images(1)), timesteps=T)
    assert {n.reset for n in ticket.neuron_layers()} == {"subtract_delayed"}
    with pytest.raises(SltUnsupportedError) as info:
        export_nir(ticket, tmp_path / "s.nir")
    message = one_line(info.value)
    assert "snnTorch import_from_nir" in message and "reset_mechanism='zero'" in message
    assert "--allow-approximate" in message and "allow_approximate=" not in message
    assert not (tmp_path / "s.nir").exists()


# ====================================================================== snnTorch models -> slt
def _leaky(shape: tuple[int, ...], beta: float, theta: float, reset: str = "zero", **kw: Any) -> Any:
    need_snntorch()
    import snntorch as snn
    import torch

    # Per-neuron tensors: snnTorch exports a scalar beta as a 0-d array, which nir 1.0's
    # type check rejects inside export_to_nir.
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, theta), reset_mechanism=reset,
                     init_hidden=True, **kw)


def _dyadic_(model: Any, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.copy_(torch.randint(-8, 9, m.weight.shape, generator=g).float() / 16)
                if m.bias is not None:
                    m.bias.copy_(torch.randint(-2, 3, m.bias.shape, generator=g).float() / 16)
    return model.eval()


def _run_snntorch(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    import snntorch as snn
    import torch

    leaky = {n: m for n, m in model.named_modules() if isinstance(m, snn.Leaky)}
    rec: dict[str, list[np.ndarray]] = {n: [] for n in leaky}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: rec[n].append(
        (o[0] if isinstance(o, tuple) else o).detach().numpy().copy())) for n, m in leaky.items()]
    for m in leaky.values():
        m.reset_mem()
    with torch.no_grad():
        for t in range(x.shape[0]):
            model(torch.from_numpy(x[t]))
    for h in hooks:
        h.remove()
    return {n: np.stack(v) for n, v in rec.items()}


def _export_snntorch(model: Any, sample_shape: tuple[int, ...], path: Path) -> None:
    need_snntorch()
    import torch
    from snntorch.export_nir import export_to_nir

    graph = quiet(lambda: export_to_nir(model, torch.zeros(1, *sample_shape), ignore_dims=[0]))
    nir.write(path, graph)


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_snntorch_exported_models_reproduce_snntorchs_spikes(net: str, tmp_path: Path) -> None:
    need_snntorch()
    import torch.nn as nn

    if net == "mlp":
        shape: tuple[int, ...] = (10,)
        model = nn.Sequential(nn.Linear(10, 12), _leaky((12,), 0.75, 0.25), nn.Linear(12, 4),
                              _leaky((4,), 0.875, 0.125, output=True))
    else:
        shape = (1, 6, 6)
        model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), _leaky((3, 6, 6), 0.5, 0.25), nn.Flatten(),
                              nn.Linear(108, 5), _leaky((5,), 0.75, 0.125, output=True))
    model = _dyadic_(model, 1)
    _export_snntorch(model, shape, tmp_path / "s.nir")
    ticket = import_nir(tmp_path / "s.nir", timesteps=T)
    assert ticket.metadata["source"] == "nir" and all(n.reset == "zero" for n in ticket.neuron_layers())
    x = spikes((T, 3, *shape), 4)
    want = _run_snntorch(model, x)
    got = simulate(with_encoding(ticket, Encoding("spikes")), x)
    names = [n.name for n in ticket.neuron_layers()]  # NIR keeps snnTorch's module names
    assert sorted(names) == sorted(want) and len(names) == 2
    for name in names:
        assert np.array_equal(got.layers[name], want[name]), name
        assert 0 < want[name].sum() < want[name].size
    # and back out through slt: the file round-trips exactly from here on
    export_nir(ticket, tmp_path / "again.nir")
    assert tickets_equal(ticket, import_nir(tmp_path / "again.nir"))


def test_snntorch_exporter_drops_the_subtract_reset(tmp_path: Path) -> None:
    """snnTorch writes every Leaky as nir.LIF (v_reset = 0): its default subtract reset is lost
    in its own export, so the file (and slt's import of it) states a zero reset."""
    need_snntorch()
    import torch.nn as nn

    model = _dyadic_(nn.Sequential(nn.Linear(6, 5), _leaky((5,), 0.75, 0.25, reset="subtract")), 2)
    _export_snntorch(model, (6,), tmp_path / "s.nir")
    ticket = import_nir(tmp_path / "s.nir", timesteps=T)
    assert ticket.neuron_layers()[0].reset == "zero"
    x = spikes((T, 4, 6), 8, p=0.9)
    got = simulate(with_encoding(ticket, Encoding("spikes")), x).layers[ticket.neuron_layers()[0].name]
    assert not np.array_equal(got, _run_snntorch(model, x)["1"])


def test_spike_trained_snntorch_model_through_nir_pack_and_run(tmp_path: Path) -> None:
    # snnTorch -> export_to_nir -> `slt pack m.nir --encoding spikes -T 12` -> `slt run`: every output spike
    need_snntorch()
    import torch.nn as nn
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    model = _dyadic_(nn.Sequential(nn.Linear(10, 12), _leaky((12,), 0.75, 0.25), nn.Linear(12, 4),
                                   _leaky((4,), 0.875, 0.125, output=True)), 3)
    _export_snntorch(model, (10,), tmp_path / "m.nir")
    runner = CliRunner()
    packed = runner.invoke(app, ["pack", str(tmp_path / "m.nir"), "--encoding", "spikes", "-T", "12",
                                 "-o", str(tmp_path / "m.slt"), "--json"])
    assert packed.exit_code == 0, packed.output
    info = json.loads(packed.stdout)
    assert info["timesteps"] == 12 and info["encoding"] == "spikes"
    x = spikes((12, 5, 10), 9, p=0.6)
    np.save(tmp_path / "x.npy", x)
    ran = runner.invoke(app, ["run", str(tmp_path / "m.slt"), "--input", str(tmp_path / "x.npy"),
                              "-o", str(tmp_path / "y.npz"), "--json"])
    assert ran.exit_code == 0, ran.output
    want = _run_snntorch(model, x)
    last = [n for n in want if n != "1"][0]  # the output Leaky
    with np.load(tmp_path / "y.npz") as y:
        assert np.array_equal(y["spikes"], want[last]) and 0 < want[last].sum() < want[last].size


def test_pack_takes_t_encoding_and_dt_for_nir_and_refuses_what_does_not_apply(tmp_path: Path, good: Path) -> None:
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    runner = CliRunner()
    out = tmp_path / "o.slt"
    ok = runner.invoke(app, ["pack", str(good), "-T", "5", "--encoding", "spikes", "-o", str(out), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["timesteps"] == 5 and slt.load(out).encoding.kind == "spikes"
    for args, message in ((["-T", "0"], "-T/--timesteps must be an integer in [1"),
                          (["--binarize"], "--binarize does not apply to a NIR graph"),
                          (["--input-shape", "4"], "--input-shape does not apply to a NIR graph")):
        res = runner.invoke(app, ["pack", str(good), *args, "-o", str(out)])
        assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output
    res = runner.invoke(app, ["pack", str(out), "--dt", "0.001", "-o", str(tmp_path / "p.slt")])
    assert res.exit_code == 2 and "--dt does not apply to a .slt file" in res.stderr


def test_foreign_graphs_with_lif_warn_that_exporters_may_have_lost_the_reset(tmp_path: Path) -> None:
    need_snntorch()
    import torch.nn as nn

    from slt_deploy.errors import SltWarning

    model = _dyadic_(nn.Sequential(nn.Linear(6, 5), _leaky((5,), 0.75, 0.25)), 2)
    _export_snntorch(model, (6,), tmp_path / "s.nir")
    with pytest.warns(SltWarning, match="export_to_nir writes a Leaky with its default subtract reset"):
        import_nir(tmp_path / "s.nir", timesteps=T)
    export_nir(mlp("binary", timesteps=3), tmp_path / "own.nir")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SltWarning)
        import_nir(tmp_path / "own.nir")  # slt's own graphs state the reset exactly: no warning


# ====================================================================== bad files
@pytest.fixture()
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.nir"
    export_nir(mlp("binary", timesteps=3), path)
    return path


@pytest.fixture()
def foreign(good: Path, tmp_path: Path) -> Path:
    path = tmp_path / "foreign.nir"
    nir.write(path, strip(nir.read(good, type_check=False)))
    return path


def edit(path: Path, fn: Any) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f["node"])
    return path


def _set(group: Any, key: str, value: Any) -> None:
    del group[key]
    group.create_dataset(key, data=value)


def _add_edge(g: Any, src: str, dst: str) -> None:
    edges = [tuple(x.decode() for x in e) for e in g["edges"][()]] + [(src, dst)]
    _set(g, "edges", np.array(edges, dtype=h5py.string_dtype()))


BAD = {
    # name: (which file, edit, error type, words in the message)
    "missing node (slt)": ("good", lambda g: g["nodes"].__delitem__("fc2"), SltImportError, "'fc2'"),
    "missing node (foreign)": ("foreign", lambda g: g["nodes"].__delitem__("fc2"), SltImportError,
                               "missing node 'fc2'"),
    "dangling edge": ("foreign", lambda g: _add_edge(g, "lif1", "ghost"), SltImportError, "ghost"),
    "cycle without state": ("foreign", lambda g: _add_edge(g, "fc2", "fc2"), SltImportError, "cycle"),
    "wrong weight shape": ("foreign", lambda g: _set(g["nodes/fc2"], "weight", np.ones((4, 7), np.float32)),
                           SltImportError, "fc2"),
    "inconsistent parameter shapes": ("foreign", lambda g: _set(g["nodes/lif1"], "v_threshold",
                                                                 np.ones(5, np.float32)), SltImportError, "'lif1'"),
    "wrong parameter shape": ("foreign", lambda g: [_set(g["nodes/lif1"], k, g["nodes/lif1"][k][:5]) for k in
                                                    ("tau", "r", "v_leak", "v_threshold", "v_reset")],
                              SltImportError, "has shape (5,), the layer has shape (12,)"),
    "wrong output shape": ("foreign", lambda g: _set(g["nodes/output"], "shape", np.array([7])), SltImportError,
                           "Output declares"),
    "unknown type": ("good", lambda g: _set(g["nodes/fc1"], "type", "Frobnicate"), SltImportError, "'fc1'"),
    "unsupported type": ("foreign", lambda g: _set(g["nodes/fc1"], "type", "Scale"), SltImportError, "'fc1'"),
    "missing field": ("good", lambda g: g["nodes/fc1"].__delitem__("weight"), SltImportError, "'weight'"),
    "NaN parameter": ("foreign", lambda g: _set(g["nodes/lif1"], "tau", np.full(12, np.nan, np.float32)),
                      SltImportError, "'tau' contains NaN"),
    "NaN weight (slt)": ("good", lambda g: _set(g["nodes/fc1"], "weight", np.full((12, 10), np.nan, np.float32)),
                         SltImportError, "fc1"),
    "tampered weight": ("good", lambda g: _set(g["nodes/fc2"], "weight", 2 * g["nodes/fc2/weight"][()]),
                        SltImportError, "fc2"),
    "tampered threshold": ("good", lambda g: _set(g["nodes/lif1"], "v_threshold", np.full(12, 9, np.float32)),
                           SltImportError, "v_threshold"),
    "bad ticket json": ("good", lambda g: _set(g["metadata"], "slt.ticket", "{not json"), SltImportError,
                        "slt.ticket"),
    "float64 weight": ("foreign", lambda g: _set(g["nodes/fc1"], "weight", np.full((12, 10), 0.1)), SltImportError,
                       "float32"),
    "leaky gain": ("foreign", lambda g: _set(g["nodes/lif1"], "r", np.ones(12, np.float32)), SltImportError, "gain"),
    "v_reset": ("foreign", lambda g: _set(g["nodes/lif1"], "v_reset", np.ones(12, np.float32)), SltImportError,
                "v_reset"),
    "soft link": ("good", lambda g: g["nodes/fc1"].__setitem__("extra", h5py.SoftLink("/node/nodes/fc2/weight")),
                  SltFormatError, "SoftLink"),
    "external link": ("good", lambda g: g["nodes/fc1"].__setitem__("extra", h5py.ExternalLink("/etc/x.h5", "/d")),
                      SltFormatError, "ExternalLink"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_give_one_typed_line(case: str, good: Path, foreign: Path) -> None:
    which, fn, error, words = BAD[case]
    path = edit(good if which == "good" else foreign, fn)
    with pytest.raises(error) as info:
        import_nir(path)
    assert words in one_line(info.value), str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("cut", [0, 8, 100, 0.5, -1])
def test_truncated_and_garbage_files(cut: Any, good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
    bad = tmp_path / "cut.nir"
    bad.write_bytes(data[:n])
    with pytest.raises((SltFormatError, SltImportError)) as info:
        import_nir(bad)
    one_line(info.value)


def test_corrupted_bytes_never_escape_as_bare_exceptions(good: Path, tmp_path: Path) -> None:
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for i in range(25):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), 8):
            bad[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"c{i}.nir"
        path.write_bytes(bytes(bad))
        try:
            import_nir(path)
        except SltError as exc:
            one_line(exc)


def test_missing_path_directory_and_wrong_argument(tmp_path: Path) -> None:
    with pytest.raises(SltFormatError, match="no such file"):
        import_nir(tmp_path / "nope.nir")
    with pytest.raises(SltFormatError, match="directory"):
        import_nir(tmp_path)
    with pytest.raises(SltError):
        import_nir(42)


def test_in_memory_graph_problems() -> None:
    w = np.ones((2, 3), np.float32)
    cases = {
        "CubaLIF": nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "fc": nir.Linear(weight=w),
                                       "c": nir.CubaLIF(tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2),
                                                        v_leak=np.zeros(2), v_threshold=np.ones(2)),
                                       "out": nir.Output(np.array([2]))},
                                edges=[("in", "fc"), ("fc", "c"), ("c", "out")], type_check=False),
        "exactly one Input": nir.NIRGraph(nodes={"fc": nir.Linear(weight=w), "out": nir.Output(np.array([2]))},
                                          edges=[("fc", "out")], type_check=False),
        "Flatten": nir.NIRGraph(nodes={"in": nir.Input(np.array([2, 3, 4])),
                                       "f": nir.Flatten(input_type=None, start_dim=1, end_dim=-1),
                                       "out": nir.Output(np.array([2, 12]))},
                                edges=[("in", "f"), ("f", "out")], type_check=False),
    }
    for words, graph in cases.items():
        with pytest.raises(SltImportError, match=words) as info:
            from_nir_graph(graph)
        one_line(info.value)


def test_nested_subgraphs_are_inlined() -> None:
    """snnTorch-style subgraph nodes: names become 'outer.inner', edges are rewired."""
    w = (np.eye(3) / 2).astype(np.float32)
    inner = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "lin": nir.Linear(weight=w),
                                "output": nir.Output(np.array([3]))},
                         edges=[("input", "lin"), ("lin", "output")], type_check=False)
    lif = nir.LIF(tau=np.full(3, 2e-4, np.float32), r=np.full(3, 2.0, np.float32), v_leak=np.zeros(3, np.float32),
                  v_threshold=np.full(3, 0.25, np.float32))
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "blk": inner, "lif": lif,
                                "output": nir.Output(np.array([3]))},
                         edges=[("input", "blk"), ("blk", "lif"), ("lif", "output")], type_check=False)
    ticket = from_nir_graph(graph, timesteps=2)
    assert [n.name for n in ticket.nodes] == ["input", "blk.lin", "lif", "output"]
    assert np.array_equal(ticket.node("lif").beta, np.full(3, 0.5, np.float32))


# ====================================================================== API and CLI
def test_api_export_and_atomic_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "m.nir"
    path.write_bytes(b"old")
    report = slt.export(mlp("int8"), path, to="nir")
    assert report["exact"] and path.stat().st_size == report["bytes"]
    with pytest.raises(SltUnsupportedError):
        slt.export(sequential((1, 4, 4), [MaxPool2d("p", kernel_size=2)], 2), path, to="nir")
    assert tickets_equal(import_nir(path), mlp("int8"))  # the failed export left the file alone
    assert [p.name for p in tmp_path.iterdir()] == ["m.nir"]


def test_cli_export_pack_round_trip_and_bad_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    runner = CliRunner()
    ticket = conv("binary", timesteps=4)
    slt.save(ticket, tmp_path / "t.slt")
    res = runner.invoke(app, ["export", str(tmp_path / "t.slt"), "--to", "nir", "-o", str(tmp_path / "m.nir"),
                              "--json"])
    assert res.exit_code == 0, res.output
    assert '"exact": true' in res.stdout
    res = runner.invoke(app, ["pack", str(tmp_path / "m.nir"), "-o", str(tmp_path / "t2.slt")])
    assert res.exit_code == 0, res.output
    assert tickets_equal(ticket, slt.load(tmp_path / "t2.slt"))

    lossy = sequential((3,), [Linear("fc", weights("float32", np.random.default_rng(0), (2, 3))),
                              LIF("lif", shape=(2,), reset="subtract")], 2)
    slt.save(lossy, tmp_path / "l.slt")
    res = runner.invoke(app, ["export", str(tmp_path / "l.slt"), "--to", "nir", "-o", str(tmp_path / "l.nir")])
    assert res.exit_code == 2 and res.stderr.startswith("slt: error: ") and res.stderr.count("\n") == 1
    assert "--allow-approximate" in res.stderr and "allow_approximate" not in res.stderr  # the CLI's own flag
    res = runner.invoke(app, ["export", str(tmp_path / "l.slt"), "--to", "nir", "-o", str(tmp_path / "l.nir"),
                              "--allow-approximate", "--dt", "1e-3"])
    assert res.exit_code == 0, res.output

    (tmp_path / "bad.nir").write_bytes((tmp_path / "m.nir").read_bytes()[:300])
    res = runner.invoke(app, ["pack", str(tmp_path / "bad.nir"), "-o", str(tmp_path / "t3.slt")])
    assert res.exit_code == 2 and res.stderr.startswith("slt: error: ") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.output and not (tmp_path / "t3.slt").exists()


def test_report_is_json_serialisable(tmp_path: Path) -> None:
    import json

    report = export_nir(conv("float32"), tmp_path / "c.nir", dt=2e-4)
    assert json.loads(json.dumps(report))["nodes"] == 8
    assert dataclasses.is_dataclass(to_nir_graph(conv("float32")))
