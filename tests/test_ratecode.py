"""The rate code (slt_deploy.ratecode): its definition, batch independence on every target, its quality.

- The numpy evaluation, the numba twin (CPU target) and the generated C equal a scalar oracle
  written from docs/semantics.md (tests/ratecode_oracle.py), bit for bit.
- A sample's spikes depend only on the sample, the seed and the step: run alone or inside
  shuffled batches with duplicates, every registered target gives it the same output (and the
  C code, one sample at a time, gives the reference's).
- Statistics of the generator (a test of its quality, not an exactness tolerance): firing
  rates match x, draws are uniform, and spikes are uncorrelated across steps, features,
  samples and seeds.
- The code's name travels with the ticket (.slt, NIR, ONNX); files written before codes were
  named load but are refused when run or exported, with the re-pack command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import ratecode_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slt_deploy as slt
from slt_deploy import ratecode, registry
from slt_deploy.errors import SltFormatError, SltImportError, SltUnsupportedError, SltValidationError
from slt_deploy.ir import (
    LIF,
    BinaryWeights,
    Conv2d,
    Encoding,
    Flatten,
    FloatWeights,
    Int8Weights,
    Linear,
    MaxPool2d,
    Ticket,
    sequential,
)
from slt_deploy.reference import simulate

DATA = Path(__file__).resolve().parent / "data"
LEGACY_SLT = DATA / "legacy-rate-pcg64.slt"    # written by slt-deploy 9839ebd (before rate codes were named)
LEGACY_ONNX = DATA / "legacy-rate-pcg64.onnx"  # the same ticket exported to ONNX by that release
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=_HEALTH)


# ============================================================================ tickets and inputs
def mlp_ticket(seed: int = 7) -> Ticket:
    """A binary MLP with biases on a 5x4 image: rate input, spiking output through two LIF layers."""
    rng = np.random.default_rng(1)
    m1 = rng.random((12, 20)) < 0.6
    m2 = rng.random((6, 12)) < 0.7
    w1 = BinaryWeights(m1, np.where(rng.random(m1.shape) < 0.5, -1, 1) * m1,
                       rng.uniform(0.2, 0.4, 12).astype(np.float32))
    w2 = BinaryWeights(m2, np.where(rng.random(m2.shape) < 0.5, -1, 1) * m2,
                       rng.uniform(0.3, 0.6, 6).astype(np.float32))
    layers = [Flatten("flat"), Linear("fc1", w1, bias=rng.normal(0, 0.1, 12).astype(np.float32)),
              LIF("h", (12,), beta=0.9, threshold=0.5, reset="subtract"),
              Linear("fc2", w2), LIF("o", (6,), beta=0.8, threshold=0.4)]
    return sequential((5, 4), layers, 6, Encoding("rate", seed))


def conv_ticket(seed: int = 11) -> Ticket:
    """Float32 and int8 weights, a conv, a max pool: rate input on 1x6x6."""
    rng = np.random.default_rng(2)
    kw = rng.normal(0, 0.6, (3, 1, 3, 3)).astype(np.float32)
    m = rng.random((4, 27)) < 0.5
    codes = rng.integers(-3, 4, (4, 27)).astype(np.int8) * m
    layers = [Conv2d("c1", FloatWeights(np.ones_like(kw, bool), kw), padding=(1, 1)),
              LIF("l1", (3, 6, 6), beta=0.85, threshold=0.6), MaxPool2d("p", (2, 2)), Flatten("f"),
              Linear("fc", Int8Weights(m, codes, np.full(4, 0.2, np.float32))),
              LIF("l2", (4,), beta=0.9, threshold=0.3)]
    return sequential((1, 6, 6), layers, 5, Encoding("rate", seed))


TICKETS = {"mlp": mlp_ticket(), "conv": conv_ticket()}


@st.composite
def real_values(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    """One sample as users feed it: uniform floats in [0, 1], images/255, exact 0/1, or a mix."""
    n = int(np.prod(shape))
    style = draw(st.sampled_from(["uniform", "image", "binary", "mixed"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "uniform":
        x = rng.random(n)
    elif style == "image":
        x = rng.integers(0, 256, n) / 255.0
    elif style == "binary":
        x = (rng.random(n) < 0.5).astype(np.float64)
    else:
        x = np.choose(rng.integers(0, 4, n), [rng.random(n), np.zeros(n), np.ones(n), rng.integers(0, 256, n) / 255])
    return x.reshape(shape).astype(draw(st.sampled_from([np.float32, np.float64])))


@st.composite
def pool_and_batch(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
    """``k`` distinct samples and a batch of indices into them (any order, duplicates allowed)."""
    k = draw(st.integers(1, 4))
    pool = np.stack([draw(real_values(shape)) for _ in range(k)])
    idx = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=7))
    return pool, idx


def _available(name: str) -> registry.TargetSpec:
    spec = registry.target(name)
    if not spec.available():
        pytest.skip(spec.missing_message())
    return spec


def _assert_batch_independent(run, pool: np.ndarray, idx: list[int]) -> None:
    """Each sample of the batch ``pool[idx]`` equals the sample run alone: output and every recorded node."""
    alone = [run(pool[j:j + 1]) for j in range(len(pool))]
    batch = run(pool[idx])
    for pos, j in enumerate(idx):
        np.testing.assert_array_equal(batch.output[:, pos], alone[j].output[:, 0], err_msg=f"sample {j} at {pos}")
        for name, values in alone[j].layers.items():
            if name in batch.layers:
                np.testing.assert_array_equal(batch.layers[name][:, pos], values[:, 0], err_msg=name)


# ============================================================================ the definition
EDGES = np.array([0.0, -0.0, 1.0, 2.0**-24, 3 * 2.0**-24, 2.0**-25, 1e-40, 0.5, np.nextafter(0.5, 0), 1 - 2.0**-24,
                  np.float32(0.3), 0.999999, 1 / 255, 128 / 255])


@_settings(40)
@given(x=st.lists(st.floats(0, 1, width=32), min_size=1, max_size=24), batch=st.integers(1, 3),
       seed=st.integers(0, 2**64 - 1), timesteps=st.integers(1, 4))
def test_numpy_evaluation_equals_the_written_definition(x: list[float], batch: int, seed: int, timesteps: int) -> None:
    xs = np.stack([np.roll(np.asarray(x, np.float32), b) for b in range(batch)])
    enc = Encoding("rate", seed)
    np.testing.assert_array_equal(ratecode.spikes(enc, xs, timesteps), ratecode_oracle.spikes(seed, xs, timesteps))


def test_edge_values_follow_the_definition() -> None:
    x = np.stack([EDGES, EDGES[::-1]])
    np.testing.assert_array_equal(ratecode.spikes(Encoding("rate", 3), x, 7), ratecode_oracle.spikes(3, x, 7))
    out = ratecode.spikes(Encoding("rate", 3), np.stack([np.zeros(50), np.ones(50)]), 20)
    assert not out[:, 0].any() and out[:, 1].all()  # p = 0 never fires, p = 1 always


def test_negative_zero_reads_as_zero_and_one_ulp_changes_the_key() -> None:
    x = np.random.default_rng(0).random((1, 30)).astype(np.float32)
    x[0, 3] = 0.0
    neg = x.copy()
    neg[0, 3] = -0.0
    enc = Encoding("rate", 9)
    np.testing.assert_array_equal(ratecode.spikes(enc, x, 16), ratecode.spikes(enc, neg, 16))
    bumped = x.copy()
    bumped[0, 7] = np.nextafter(bumped[0, 7], np.float32(1))
    assert ratecode.sample_keys(x, 9)[0] != ratecode.sample_keys(bumped, 9)[0]
    assert not np.array_equal(ratecode.spikes(enc, x, 16), ratecode.spikes(enc, bumped, 16))


def test_float64_input_is_rounded_to_float32_first() -> None:
    x64 = np.random.default_rng(4).random((3, 40))
    enc = Encoding("rate", 1)
    np.testing.assert_array_equal(ratecode.spikes(enc, x64, 5), ratecode.spikes(enc, x64.astype(np.float32), 5))


def test_c_source_matches_the_python_constants() -> None:
    for const in (ratecode.GAMMA, ratecode.MIX1, ratecode.MIX2):
        assert f"0x{const:016x}ull" in ratecode.C_SOURCE


@_settings(25)
@given(data=st.data())
def test_numba_twin_equals_numpy(data: st.DataObject) -> None:
    pytest.importorskip("numba")
    from slt_deploy.targets.cpu import rate_numba

    shape = data.draw(st.sampled_from([(1,), (17,), (3, 5), (2, 3, 4)]))
    pool, idx = data.draw(pool_and_batch(shape))
    x = pool[idx]
    if data.draw(st.booleans()):
        x = x.copy()
        x.reshape(-1)[0] = -0.0
    enc = Encoding("rate", data.draw(st.integers(0, 2**64 - 1)))
    T = data.draw(st.integers(1, 6))
    np.testing.assert_array_equal(rate_numba.spikes(enc, x, T), ratecode.spikes(enc, x, T))


# ============================================================================ batch independence
SOFTWARE_TARGETS = [n for n, s in registry.TARGETS.items() if "lava" not in (s.requires or ())]
LAVA_TARGETS = [n for n, s in registry.TARGETS.items() if "lava" in (s.requires or ())]


@pytest.mark.parametrize("target", SOFTWARE_TARGETS)
@pytest.mark.parametrize("family", sorted(TICKETS))
@_settings(8)
@given(data=st.data())
def test_a_sample_fires_the_same_alone_and_in_any_batch(target: str, family: str, data: st.DataObject) -> None:
    _available(target)
    ticket = TICKETS[family]
    pool, idx = data.draw(pool_and_batch(ticket.input_shape))
    _assert_batch_independent(lambda x: slt.run(ticket, x, target=target, record=True), pool, idx)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@_settings(8)
@given(data=st.data())
def test_cpu_backends_are_batch_independent_and_equal_the_reference(backend: str, data: st.DataObject) -> None:
    if backend == "numba":
        pytest.importorskip("numba")
    ticket = TICKETS[data.draw(st.sampled_from(sorted(TICKETS)))]
    pool, idx = data.draw(pool_and_batch(ticket.input_shape))
    run = lambda x: slt.run(ticket, x, target="cpu", backend=backend, threads=2, record=True)  # noqa: E731
    _assert_batch_independent(run, pool, idx)
    np.testing.assert_array_equal(run(pool[idx]).output, simulate(ticket, pool[idx]).output)


@pytest.mark.slow
@pytest.mark.parametrize("target", LAVA_TARGETS)
@_settings(2)
@given(data=st.data())
def test_lava_is_batch_independent(target: str, data: st.DataObject) -> None:
    _available(target)
    ticket = TICKETS["mlp"]
    pool, idx = data.draw(pool_and_batch(ticket.input_shape))
    pool = pool[:2]  # Lava runs take seconds: two samples, a batch of up to three
    _assert_batch_independent(lambda x: slt.run(ticket, x, target=target, record=True), pool,
                              [i % len(pool) for i in idx[:3]])


def test_every_target_fires_the_same_input_spikes() -> None:
    """The input node's spikes of one batch, on every registered target that records it."""
    ticket = TICKETS["mlp"]
    x = np.random.default_rng(5).random((4, *ticket.input_shape)).astype(np.float32)
    expected = ratecode.spikes(ticket.encoding, x, ticket.timesteps).astype(np.float32)
    np.testing.assert_array_equal(simulate(ticket, x).layers[ticket.input.name], expected)
    for name in SOFTWARE_TARGETS:
        if not registry.target(name).available():
            continue
        got = slt.run(ticket, x, target=name, record=True).layers.get(ticket.input.name)
        if got is not None:
            np.testing.assert_array_equal(got, expected, err_msg=name)


# ---------------------------------------------------------------------------- C, both modes
@pytest.fixture(scope="module")
def c_programs(tmp_path_factory: pytest.TempPathFactory):
    from slt_deploy.exporters.c import generate, harness

    if harness.host_compiler() is None:
        pytest.skip("no host C compiler")
    programs = {}
    for family, ticket in TICKETS.items():
        for arith in ("float", "fixed"):
            folder = tmp_path_factory.mktemp(f"c-{family}-{arith}")
            header, source, info = generate(ticket, "net", arith, 32, True)
            (folder / "net.h").write_text(header)
            (folder / "net.c").write_text(source)
            programs[family, arith] = (harness.build(folder, "net", ticket, arith=arith), folder, info)
    return programs


@pytest.mark.parametrize("arith", ["float", "fixed"])
@pytest.mark.parametrize("family", sorted(TICKETS))
@_settings(6)
@given(data=st.data())
def test_c_one_sample_at_a_time_equals_the_reference_on_shuffled_batches(c_programs, family: str, arith: str,
                                                                         data: st.DataObject) -> None:
    ticket = TICKETS[family]
    h, folder, info = c_programs[family, arith]
    pool, idx = data.draw(pool_and_batch(ticket.input_shape))
    x = pool[idx]
    got = h.run(x, folder)["output"]
    if arith == "float":
        expected = simulate(ticket, x).output
    else:
        expected = info["fixed"].simulate(x).output
        if not ticket.output_is_spiking:
            pytest.skip("spiking outputs only")
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_c_header_names_the_code_and_the_seed(c_programs) -> None:
    for (family, _), (_, folder, _) in c_programs.items():
        header = (folder / "net.h").read_text()
        seed = TICKETS[family].encoding.seed
        assert f'#define NET_RATE_CODE "{ratecode.RATE_CODE}"' in header
        assert f"#define NET_RATE_SEED 0x{seed:016x}ull" in header
        assert "rng[4]" not in header and "PCG64" not in header


# ============================================================================ statistics (quality)
def _stat_spikes(p: float, seed: int = 0, n: int = 512, T: int = 2048) -> np.ndarray:
    x = np.full((1, n), p, np.float32)
    x[0, 0] = np.float32(p) if p == 0 else np.nextafter(np.float32(p), np.float32(0))  # a distinct sample
    return ratecode.spikes(Encoding("rate", seed), x, T)[:, 0].astype(np.float64)  # (T, n)


@pytest.mark.parametrize("p", [0.02, 0.3, 0.5, 0.77, 0.995])
def test_mean_firing_rate_is_x(p: float) -> None:
    s = _stat_spikes(p)
    T, n = s.shape
    sd = np.sqrt(p * (1 - p) / (T * n))
    assert abs(s.mean() - p) < 6 * sd
    z = (s.mean(axis=0) - p) / np.sqrt(p * (1 - p) / T)  # each feature over the steps
    assert np.abs(z).max() < 5.5
    assert 0.8 < np.mean(z**2) < 1.2


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_spikes_are_uncorrelated_across_steps_and_features(p: float) -> None:
    s = _stat_spikes(p, seed=5) - p
    T, n = s.shape
    var = p * (1 - p)
    lag_t = (s[1:] * s[:-1]).mean() / var            # step t vs t+1, same feature
    lag_i = (s[:, 1:] * s[:, :-1]).mean() / var      # feature i vs i+1, same step
    far = (s[:, : n // 2] * s[:, n // 2:]).mean() / var
    for r in (lag_t, lag_i, far):
        assert abs(r) < 6 / np.sqrt(T * n / 2)


def test_samples_and_seeds_draw_independent_streams() -> None:
    rng = np.random.default_rng(7)
    a = rng.random(400).astype(np.float32)
    b = a.copy()
    b[0] = np.float32(0.123)  # one feature differs: a different key, fresh draws everywhere
    T, p_ok = 1024, slice(1, None)
    enc0, enc1 = Encoding("rate", 0), Encoding("rate", 1)
    sa = ratecode.spikes(enc0, a[None], T)[:, 0, p_ok].astype(np.float64)
    sb = ratecode.spikes(enc0, b[None], T)[:, 0, p_ok].astype(np.float64)
    sc = ratecode.spikes(enc1, a[None], T)[:, 0, p_ok].astype(np.float64)
    pa = a[p_ok]
    var = pa * (1 - pa)
    for other in (sb, sc):
        r = ((sa - pa) * (other - pa)).sum() / (var.sum() * T)
        assert abs(r) < 6 / np.sqrt(T * len(pa))
        assert not np.array_equal(sa, other)


def test_draws_are_uniform_24_bit_integers() -> None:
    keys = ratecode.sample_keys(np.random.default_rng(8).random((64, 100)).astype(np.float32), 3)
    u = np.concatenate([ratecode.draws(keys, t, 100).ravel() for t in range(160)])  # 1,024,000 draws
    assert u.max() < 2**24
    hist = np.bincount((u >> 16).astype(np.int64), minlength=256)  # top 8 bits
    expected = len(u) / 256
    chi2 = ((hist - expected) ** 2 / expected).sum()
    assert chi2 < 255 + 6 * np.sqrt(2 * 255)
    bits = ((u[:, None] >> np.arange(24, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    assert np.abs(bits - 0.5).max() < 6 * 0.5 / np.sqrt(len(u))


# ============================================================================ identity of the code
def test_encoding_names_its_code_and_checks_the_seed() -> None:
    enc = Encoding("rate", 5)
    assert enc.code == ratecode.RATE_CODE == "splitmix64-keyed/1"
    assert enc == Encoding("rate", 5, ratecode.RATE_CODE)
    assert Encoding("rate", 2**64 - 1).seed == 2**64 - 1
    for bad in (-1, 2**64, True, 1.5, None):
        with pytest.raises(SltValidationError, match="--seed"):
            Encoding("rate", bad)
    with pytest.raises(SltValidationError, match="unknown rate code"):
        Encoding("rate", 1, "xorshift/9")
    with pytest.raises(SltValidationError, match="no rate code"):
        Encoding("direct", None, ratecode.RATE_CODE)


def test_slt_files_store_the_code(tmp_path: Path) -> None:
    from slt_deploy.format.schema import ticket_to_graph

    graph, _ = ticket_to_graph(TICKETS["mlp"])
    assert graph["encoding"] == {"kind": "rate", "seed": 7, "code": ratecode.RATE_CODE}
    direct, _ = ticket_to_graph(TICKETS["mlp"].with_encoding(Encoding("direct")))
    assert direct["encoding"] == {"kind": "direct", "seed": None}  # unchanged for other encodings
    path = tmp_path / "t.slt"
    slt.save(TICKETS["mlp"], path)
    assert slt.load(path).encoding == TICKETS["mlp"].encoding


def _with_graph(graph: dict) -> bytes:
    """A container with valid checksums around ``graph`` (as tests/test_format.py builds hostile files)."""
    import hashlib

    from safetensors.numpy import save

    text = json.dumps(graph)
    return save({}, metadata={"format": "slt", "format_version": "1", "graph": text, "sha256": "{}",
                              "graph_sha256": hashlib.sha256(text.encode()).hexdigest()})


def test_slt_reader_refuses_unknown_codes_and_seeds_out_of_range() -> None:
    from slt_deploy.format.container import deserialize
    from slt_deploy.format.schema import ticket_to_graph

    graph, _ = ticket_to_graph(sequential((3,), [], 2, Encoding("rate", 1)))
    for enc, fragment in (({"kind": "rate", "seed": 1, "code": "mt19937/1"}, "unknown rate code"),
                          ({"kind": "rate", "seed": 2**64, "code": ratecode.RATE_CODE}, "graph.encoding.seed"),
                          ({"kind": "direct", "seed": None, "code": ratecode.RATE_CODE}, "no rate code"),
                          ({"kind": "rate", "seed": 1, "code": 3}, "graph.encoding.code")):
        with pytest.raises(SltFormatError, match=fragment) as info:
            deserialize(_with_graph({**graph, "encoding": enc}))
        assert "\n" not in str(info.value)


def test_legacy_slt_loads_but_is_refused_when_run_or_exported(tmp_path: Path) -> None:
    ticket = slt.load(LEGACY_SLT)
    assert ticket.encoding == Encoding("rate", 5, ratecode.LEGACY_RATE_CODE)
    x = np.random.default_rng(0).random((2, 16))
    for name in SOFTWARE_TARGETS:
        if not registry.target(name).available():
            continue
        with pytest.raises(SltUnsupportedError, match="pcg64-batch/0") as info:
            slt.run(ticket, x, target=name)
        msg = str(info.value)
        assert "\n" not in msg and "slt pack" in msg and "--seed 5" in msg
    with pytest.raises(SltUnsupportedError, match="re-pack"):
        slt.export(ticket, tmp_path / "c", to="c")
    assert not (tmp_path / "c").exists()


def test_the_code_survives_a_nir_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("nir")
    from slt_deploy.exporters.nir import import_nir

    ticket = slt.load(LEGACY_SLT)
    slt.export(ticket, tmp_path / "t.nir", to="nir")
    assert import_nir(tmp_path / "t.nir").encoding.code == ratecode.LEGACY_RATE_CODE
    current = ticket.with_encoding(Encoding("rate", 5))
    slt.export(current, tmp_path / "c.nir", to="nir")
    assert import_nir(tmp_path / "c.nir").encoding == Encoding("rate", 5)


def test_nir_document_without_a_code_reads_as_legacy(tmp_path: Path) -> None:
    """A NIR file of the previous release stores {"kind", "seed"} only."""
    pytest.importorskip("nir")
    from slt_deploy.exporters.nir import from_nir_graph
    from slt_deploy.exporters.nir._common import TICKET_KEY
    from slt_deploy.exporters.nir._export import build_graph

    current = slt.load(LEGACY_SLT).with_encoding(Encoding("rate", 5))
    graph, _ = build_graph(current)
    doc = json.loads(graph.metadata[TICKET_KEY])
    assert doc["encoding"] == {"kind": "rate", "seed": 5, "code": ratecode.RATE_CODE}
    del doc["encoding"]["code"]
    graph.metadata[TICKET_KEY] = json.dumps(doc)
    assert from_nir_graph(graph).encoding == Encoding("rate", 5, ratecode.LEGACY_RATE_CODE)


def test_legacy_onnx_model_is_refused_with_the_repack_message() -> None:
    pytest.importorskip("onnxruntime")
    from slt_deploy.targets.onnxruntime import run_onnx_file

    with pytest.raises(SltUnsupportedError, match="pcg64-batch/0.*slt pack"):
        run_onnx_file(LEGACY_ONNX, np.random.default_rng(0).random((2, 16)))


def test_onnx_metadata_names_the_code(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    report = slt.export(TICKETS["mlp"], tmp_path / "m.onnx", to="onnx")
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert props["slt_deploy.rate_code"] == ratecode.RATE_CODE and props["slt_deploy.seed"] == "7"
    assert report["input"]["rate_code"] == ratecode.RATE_CODE


def test_netx_file_names_the_code(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    ticket = TICKETS["mlp"]
    slt.export(ticket, tmp_path / "m.net", to="netx", allow_approximate=True)
    with h5py.File(tmp_path / "m.net", "r") as f:
        assert f.attrs["input_encoding"] == "rate"
        assert f.attrs["input_rate_code"] == ratecode.RATE_CODE and f.attrs["input_rate_seed"] == "7"


# ============================================================================ API and CLI
class _Net:
    @staticmethod
    def module():
        import torch

        return torch.nn.Sequential(torch.nn.Linear(6, 4))


def test_from_torch_takes_rate_and_seed() -> None:
    pytest.importorskip("torch")
    module = _Net.module()
    assert slt.from_torch(module, input_shape=(6,), encoding="rate", seed=42).encoding == Encoding("rate", 42)
    assert slt.from_torch(module, input_shape=(6,), encoding="rate").encoding == Encoding("rate", 0)
    with pytest.raises(SltImportError, match="--seed applies to --encoding rate"):
        slt.from_torch(module, input_shape=(6,), encoding="direct", seed=3)
    with pytest.raises(SltImportError, match="seed"):
        slt.from_torch(module, input_shape=(6,), encoding="rate", seed=-2)


def test_import_nir_takes_an_encoding(tmp_path: Path) -> None:
    pytest.importorskip("nir")
    from slt_deploy.exporters.nir import import_nir

    direct = TICKETS["mlp"].with_encoding(Encoding("direct"))
    slt.export(direct, tmp_path / "d.nir", to="nir", allow_approximate=True)  # slt reads its subtract reset back
    assert import_nir(tmp_path / "d.nir").encoding == Encoding("direct")
    assert import_nir(tmp_path / "d.nir", encoding="rate", seed=9).encoding == Encoding("rate", 9)
    assert import_nir(tmp_path / "d.nir", encoding="spikes").encoding == Encoding("spikes")
    with pytest.raises(SltImportError, match="--seed"):
        import_nir(tmp_path / "d.nir", seed=9)


def _cli(*args: str):
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_pack_takes_seed_and_repacks_legacy_files(tmp_path: Path) -> None:
    out = tmp_path / "new.slt"
    res = _cli("pack", str(LEGACY_SLT), "-o", str(out), "--seed", "5", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert (summary["encoding"], summary["seed"], summary["rate_code"]) == ("rate", 5, ratecode.RATE_CODE)
    assert slt.load(out).encoding == Encoding("rate", 5)
    kept = tmp_path / "kept.slt"  # --encoding rate alone keeps the stored seed and re-keys with the current code
    assert _cli("pack", str(LEGACY_SLT), "-o", str(kept), "--encoding", "rate").exit_code == 0
    assert slt.load(kept).encoding == Encoding("rate", 5)
    res = _cli("run", str(LEGACY_SLT), "-i", str(_npy(tmp_path, np.full((1, 16), 0.5))))
    assert res.exit_code == 2 and "slt pack" in res.output and "Traceback" not in res.output
    res = _cli("inspect", str(out))
    assert res.exit_code == 0 and ratecode.RATE_CODE in res.output


def _npy(tmp_path: Path, x: np.ndarray) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path


@pytest.mark.parametrize("args,fragment", [
    (("--encoding", "direct", "--seed", "3"), "--seed applies to --encoding rate"),
    (("--encoding", "rate", "--seed", "-1"), "--seed"),
    (("--seed", str(2**64)), "--seed"),
])
def test_cli_pack_refuses_bad_seeds_in_one_line(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    res = _cli("pack", str(LEGACY_SLT), "-o", str(tmp_path / "o.slt"), *args)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0], res.output


def test_cli_pack_model_import_with_rate(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ckpt = tmp_path / "m.pt"
    torch.save(_Net.module(), ckpt)
    out = tmp_path / "m.slt"
    res = _cli("pack", str(ckpt), "--trust-pickle", "--input-shape", "6", "--encoding", "rate", "--seed", "12",
               "-o", str(out))
    if res.exit_code != 0 and "pickle" in res.output.lower():
        pytest.skip(res.output)
    assert res.exit_code == 0, res.output
    assert slt.load(out).encoding == Encoding("rate", 12)
