"""The compiled conv kernels of the CPU runtime against an exact oracle, on real-looking data.

Oracle: every output pixel's terms ``code · x`` (float64, exact products) summed with
:func:`slt_deploy.exact.round_exact` (``math.fsum`` + the float32 midpoint rule), then
``· scale + bias`` in float32: the rule of docs/semantics.md. Inputs are standardized
float32 features, images/255, adversarial values (huge exponent spans, float32
midpoints, subnormals, cancellation) and spike trains; weights are float32 values,
binary ±1 (with the per-channel scale) and int8 codes. Geometry: strides, padding,
dilation, groups drawn by hypothesis.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slt_deploy.targets import cpu

from slt_deploy import exact
from slt_deploy.ir import BinaryWeights, Conv2d, FloatWeights, Int8Weights

pytestmark = pytest.mark.skipif(not cpu.numba_available(), reason="numba kernels")
PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32)))


def _geometry(draw) -> dict:
    groups = draw(st.sampled_from([1, 1, 2]))
    return dict(c=groups * draw(st.integers(1, 3)), o=groups * draw(st.integers(1, 4)), groups=groups,
                h=draw(st.integers(3, 9)), w=draw(st.integers(3, 9)),
                k=draw(st.sampled_from([(1, 1), (3, 3), (2, 3)])),
                stride=draw(st.sampled_from([(1, 1), (2, 1), (2, 2)])),
                pad=draw(st.sampled_from([(0, 0), (1, 1), (1, 0)])),
                dil=draw(st.sampled_from([(1, 1), (1, 1), (2, 1)])))


def _weights(rng: np.random.Generator, kind: str, shape: tuple[int, ...], density: float):
    mask = rng.random(shape) < density
    if kind == "binary":
        return BinaryWeights(mask, rng.random(shape) < 0.5, rng.uniform(0.05, 0.5, shape[0]).astype(np.float32))
    if kind == "int8":
        q = (rng.integers(-127, 128, shape) * mask).astype(np.int8)
        return Int8Weights(q != 0, q, rng.uniform(0.001, 0.02, shape[0]).astype(np.float32))
    vals = (rng.normal(0, 0.3, shape) * mask).astype(np.float32)
    return FloatWeights(vals != 0, vals)


def _inputs(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "standardized":
        raw = rng.normal(3.0, 2.0, (64, *shape[1:])).astype(np.float32)
        std = ((raw - raw.mean(0)) / raw.std(0)).astype(np.float32)
        return std[:shape[0]]
    if kind == "images255":
        return (rng.integers(0, 256, shape).astype(np.float32) / np.float32(255)).astype(np.float32)
    if kind == "blocky":  # repeated pixels: exact cancellations and sums on float32 midpoints
        base = (rng.normal(0, 1, (shape[0], shape[1], 2, 2))).astype(np.float32)
        return np.tile(base, (1, 1, -(-shape[2] // 2), -(-shape[3] // 2)))[:, :, :shape[2], :shape[3]].copy()
    if kind == "adversarial":
        mant = rng.uniform(-1, 1, shape)
        return (mant * np.exp2(rng.integers(-140, 60, shape))).astype(np.float32)
    return (rng.random(shape) < {"spikes5": 0.05, "spikes20": 0.2, "spikes60": 0.6}[kind]).astype(np.float32)


def _node(g: dict, weights) -> Conv2d:
    return Conv2d("c", weights, stride=g["stride"], padding=g["pad"], dilation=g["dil"], groups=g["groups"])


def _oracle(x: np.ndarray, node: Conv2d, out_shape: tuple[int, int, int]) -> np.ndarray:
    """float32 ``float32(S) · scale + bias`` per output pixel, ``S`` the exact sum of its terms."""
    from slt_deploy.ir import dense_weights

    w = node.weights
    codes = (w.values if isinstance(w, FloatWeights) else
             w.q if isinstance(w, Int8Weights) else np.where(w.negative, -1, 1) * w.mask).astype(np.float64)
    codes = codes * w.mask
    assert dense_weights(w).shape == codes.shape
    scale = None if isinstance(w, FloatWeights) else np.asarray(w.channel_scale(), np.float32)
    (sh, sw), (ph, pw), (dh, dw), groups = node.stride, node.padding, node.dilation, node.groups
    o, cg, kh, kw = codes.shape
    og = o // groups
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.empty((x.shape[0], *out_shape), np.float32)
    for r in range(x.shape[0]):
        for oc in range(o):
            c0 = (oc // og) * cg
            for oy in range(out_shape[1]):
                for ox in range(out_shape[2]):
                    y0, x0 = oy * sh, ox * sw
                    win = xp[r, c0:c0 + cg, y0:y0 + (kh - 1) * dh + 1:dh, x0:x0 + (kw - 1) * dw + 1:dw]
                    v = exact.round_exact((codes[oc] * win).ravel())
                    out[r, oc, oy, ox] = v if scale is None else v * scale[oc]
    return out


def _out_shape(g: dict) -> tuple[int, int, int]:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g["k"], g["stride"], g["pad"], g["dil"]
    return (g["o"], (g["h"] + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (g["w"] + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


@st.composite
def _cases(draw, inputs: tuple[str, ...], kinds: tuple[str, ...]):
    g = _geometry(draw)
    shape = _out_shape(g)
    if shape[1] < 1 or shape[2] < 1:
        g["pad"] = (1, 1)
        g["k"], g["dil"] = (1, 1), (1, 1)
        shape = _out_shape(g)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(kinds))
    density = draw(st.sampled_from([0.1, 0.3, 1.0]))
    node = _node(g, _weights(rng, kind, (g["o"], g["c"] // g["groups"], *g["k"]), density))
    x = _inputs(rng, draw(st.sampled_from(inputs)), (draw(st.integers(1, 3)), g["c"], g["h"], g["w"]))
    return node, x, shape


def _geom(node: Conv2d, x: np.ndarray, shape: tuple[int, int, int]):
    from slt_deploy.targets.cpu.geometry import ConvGeometry

    return ConvGeometry.of(node, x.shape[1:], shape)


@PROPERTY
@given(_cases(("standardized", "images255", "blocky", "adversarial"), ("float32", "binary", "int8")))
def test_checked_conv_matches_fsum(case) -> None:
    from slt_deploy.targets.cpu import numba_conv_checked
    from slt_deploy.targets.cpu.stores import Coo, CsrStore

    node, x, shape = case
    g = _geom(node, x, shape)
    taps = numba_conv_checked.ConvTaps.of(CsrStore.from_coo(Coo.from_weights(node.weights)), g)
    with np.errstate(all="ignore"):
        got = numba_conv_checked.conv_checked(x.astype(np.float64), taps, g)
        want = _oracle(x, node, shape)
        w = node.weights
        if not isinstance(w, FloatWeights):
            got = got * np.asarray(w.channel_scale(), np.float32)[None, :, None, None]
    assert _same_bits(got, want)


def test_checked_conv_window_bound_too_loose_falls_to_the_pixel_sum() -> None:
    """Stride 1 tests a pixel first against ``max|code|·Σ_window |x|`` (every tap, kept or not). A
    huge input under a pruned tap makes that bound useless; the pixel's own ``B̂`` then decides
    it, with no slow-path sum."""
    from slt_deploy.targets.cpu import numba_conv_checked
    from slt_deploy.targets.cpu.stores import Coo, CsrStore

    w = np.zeros((2, 1, 3, 3), np.float32)
    w[0, 0, 1, 1], w[1, 0, 0, 0] = 0.7, -1.3  # centre tap / corner tap only
    node = Conv2d("c", FloatWeights(w != 0, w), padding=1)
    x = np.random.default_rng(0).normal(0, 1, (2, 1, 5, 5)).astype(np.float32)
    x[:, 0, 2, 3] = np.float32(3e37)  # under pruned taps of most windows around it
    g = _geom(node, x, (2, 5, 5))
    taps = numba_conv_checked.ConvTaps.of(CsrStore.from_coo(Coo.from_weights(node.weights)), g)
    before = exact.fallback_count()
    got = numba_conv_checked.conv_checked(x.astype(np.float64), taps, g)
    assert exact.fallback_count() == before
    assert _same_bits(got, _oracle(x, node, (2, 5, 5)))


def test_checked_conv_slow_path_breaks_a_midpoint_tie() -> None:
    """1 + 2^-24 is a float32 midpoint; the 2^-60 term makes the exact sum round up. Float64
    accumulation loses that term (rounds to even: 1.0); only the exact slow path gets it right."""
    from slt_deploy.targets.cpu import numba_conv_checked
    from slt_deploy.targets.cpu.stores import Coo, CsrStore

    w = np.ones((1, 3, 1, 1), np.float32)
    node = Conv2d("c", FloatWeights(w != 0, w))
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, :, 0, 0] = [1.0, 2.0 ** -24, 2.0 ** -60]
    x[0, :, 1, 1] = [1.0, 2.0 ** -24, 0.0]  # exact midpoint: the lattice certificate, ties to even
    g = _geom(node, x, (1, 2, 2))
    taps = numba_conv_checked.ConvTaps.of(CsrStore.from_coo(Coo.from_weights(node.weights)), g)
    before = exact.fallback_count()
    got = numba_conv_checked.conv_checked(x.astype(np.float64), taps, g)
    assert exact.fallback_count() - before == 1
    assert got[0, 0, 0, 0] == np.nextafter(np.float32(1), np.float32(2)) and got[0, 0, 1, 1] == np.float32(1)
    assert _same_bits(got, _oracle(x, node, (1, 2, 2)))


@PROPERTY
@given(_cases(("spikes5", "spikes20", "spikes60"), ("binary", "int8", "float32")), st.sampled_from([1, 3, 8, 11]),
       st.booleans())
def test_event_conv_matches_exact_sums(case, steps: int, with_bias: bool) -> None:
    """Event scatter (per row, and the SWAR pass over ``steps`` rows of a sample) == exact oracle."""
    from slt_deploy.targets.cpu.numba_conv_event import conv_event
    from slt_deploy.targets.cpu.stores import Coo, weight_scale
    from slt_deploy.targets.cpu.stores_conv import ConvEventStore

    node, x, shape = case
    rng = np.random.default_rng(x.shape[0])
    x = (rng.random((steps * x.shape[0], *x.shape[1:])) < x.mean() + 0.05).astype(np.float32)
    g = _geom(node, x, shape)
    store = ConvEventStore.from_coo(Coo.from_weights(node.weights), g)
    assert np.array_equal(ConvEventStore.from_coo(store.to_coo(), g).offset, store.offset)
    bias = rng.normal(0, 0.1, g.o).astype(np.float32) if with_bias else None
    want = _oracle(x, node, shape)
    if bias is not None:
        want = want + bias[None, :, None, None]
    got = conv_event(x.astype(np.uint8), store, g, weight_scale(node.weights), bias, steps)
    assert _same_bits(got, want)
    sixteenths = (np.round(x * rng.integers(0, 17, x.shape)) / 16).astype(np.float32)  # analog on a lattice
    want = _oracle(sixteenths, node, shape) + (0 if bias is None else bias[None, :, None, None])
    assert _same_bits(conv_event(sixteenths.astype(np.float64), store, g, weight_scale(node.weights), bias), want)


@PROPERTY
@given(_cases(("spikes20", "spikes60"), ("binary", "int8", "float32")), st.booleans())
def test_gather_conv_matches_exact_sums(case, with_bias: bool) -> None:
    """Sparse-tap gather (vectorized, any order) on certified input: spikes and a 1/16 lattice."""
    from slt_deploy.targets.cpu.numba_conv import conv_gather
    from slt_deploy.targets.cpu.stores import Coo, CsrStore, weight_scale

    node, x, shape = case
    g = _geom(node, x, shape)
    rng = np.random.default_rng(x.shape[0])
    store = CsrStore.from_coo(Coo.from_weights(node.weights))
    bias = rng.normal(0, 0.1, g.o).astype(np.float32) if with_bias else None
    for data in (x, (np.round(x * rng.integers(0, 17, x.shape)) / 16).astype(np.float32)):
        want = _oracle(data, node, shape) + (0 if bias is None else bias[None, :, None, None])
        assert _same_bits(conv_gather(data.astype(np.float64), store, g, weight_scale(node.weights), bias), want)


@PROPERTY
@given(st.integers(0, 2**31), st.sampled_from(["max", "sum", "avg"]), st.sampled_from([(2, 2), (3, 3), (2, 3)]),
       st.sampled_from([None, (1, 1), (2, 1)]), st.sampled_from([(0, 0), (1, 1), (1, 0)]))
def test_compiled_spike_pools_equal_numpy_pools(seed: int, kind: str, k, stride, pad) -> None:
    from slt_deploy.targets.cpu import ops
    from slt_deploy.targets.cpu.numba_pool import pool_spikes
    from slt_deploy.targets.cpu.values import Value

    from slt_deploy.ir import AvgPool2d, MaxPool2d, SumPool2d

    if pad[0] * 2 > k[0] or pad[1] * 2 > k[1]:
        pad = (0, 0)
    node = {"max": MaxPool2d, "sum": SumPool2d, "avg": AvgPool2d}[kind]("p", k, stride=stride, padding=pad)
    rng = np.random.default_rng(seed)
    spikes = (rng.random((3, 2, 2, 7, 8)) < rng.uniform(0.05, 0.6)).astype(np.uint8)
    want = ops.pool(node, Value(spikes, False, True))
    got = ops.pool(node, Value(spikes, False, True), pool_spikes)
    assert got.binary == want.binary and got.data.dtype == want.data.dtype
    assert np.array_equal(got.data, want.data)


def test_compiled_max_pool_2x2_fast_path() -> None:
    from slt_deploy.targets.cpu import ops
    from slt_deploy.targets.cpu.numba_pool import pool_spikes
    from slt_deploy.targets.cpu.values import Value

    from slt_deploy.ir import MaxPool2d

    spikes = (np.random.default_rng(3).random((2, 3, 4, 9, 10)) < 0.3).astype(np.uint8)
    want = ops.pool(MaxPool2d("p", 2), Value(spikes, False, True)).data
    assert np.array_equal(ops.pool(MaxPool2d("p", 2), Value(spikes, False, True), pool_spikes).data, want)


@pytest.mark.parametrize("kind", ["binary", "float32"])
@pytest.mark.parametrize("inputs", ["standardized", "images255", "spikes20"])
def test_vgg_like_net_equals_reference_on_real_data(kind: str, inputs: str) -> None:
    """A small VGG-style net (stride-1 3x3 convs, max pools) end to end: analog first conv
    (gather or checked), hidden convs on the event scatter (byte lanes for binary weights,
    T = 8), compiled pools; every layer's per-step output equals the reference bit for bit."""
    from slt_deploy import reference
    from slt_deploy.ir import LI, LIF, Encoding, Flatten, Linear, MaxPool2d, sequential

    rng = np.random.default_rng(12)
    enc = Encoding("spikes") if inputs.startswith("spikes") else Encoding("direct")
    w = [_weights(rng, kind, s, d) for s, d in (((8, 3, 3, 3), 0.3), ((8, 8, 3, 3), 0.1), ((16, 8, 3, 3), 0.1))]
    net = sequential((3, 12, 12), [
        Conv2d("c1", w[0], padding=1), LIF("l1", (8, 12, 12), beta=0.9, threshold=0.3),
        Conv2d("c2", w[1], padding=1), LIF("l2", (8, 12, 12), beta=0.9, threshold=0.2), MaxPool2d("p1", 2),
        Conv2d("c3", w[2], padding=1), LIF("l3", (16, 6, 6), beta=0.9, threshold=0.2), MaxPool2d("p2", 2),
        Flatten("f"), Linear("fc", _weights(rng, kind, (10, 144), 0.2)), LI("ro", (10,), beta=0.9)], 8, enc)
    if enc.kind == "spikes":
        x = _inputs(rng, inputs, (24, 3, 12, 12)).reshape(8, 3, 3, 12, 12)
    else:
        x = _inputs(rng, inputs, (3, 3, 12, 12))
    ref = reference.simulate(net, x, record=True)
    rt = cpu.load(net, backend="numba", threads=1)
    got = rt.run(x, record=True)
    for name, value in ref.layers.items():
        assert _same_bits(got.layers[name], value), name
    assert {rt.kernels_used()[n] for n in ("c2", "c3")} == {"event"}
    assert _same_bits(rt.run(x).output, ref.output)
