"""The reference conv over spikes (tap-shifted products, no patches) equals the patch product.

Oracle: the patch product of :func:`slt_deploy.reference._conv_sum` for analog input
(``exact.exact_matmul`` over ``conv_patches``), on the same spikes, bit for bit after the one
rounding; over kernel sizes, strides (3 and more take the patch product), paddings up to the
kernel's span, images smaller than the kernel, dilations and groups, binary / int8 / float32
weights.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from slt_deploy import exact
from slt_deploy.ir import BinaryWeights, Conv2d, FloatWeights, Int8Weights
from slt_deploy.numerics import conv_patches
from slt_deploy.reference import _codes_and_rows, _conv_sum, _spike_conv_sum


def _patch_sum(node: Conv2d, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The patch product of every group (the analog path's arithmetic), rounded to float32."""
    patches = conv_patches(x, node.kernel_size, node.stride, node.padding, node.dilation)
    batch, _, h_out, w_out = patches.shape[:4]
    c_out, c_in_g = codes.shape[:2]
    og, outs = c_out // node.groups, []
    for gi in range(node.groups):
        p = patches[:, gi * c_in_g:(gi + 1) * c_in_g].transpose(0, 2, 3, 1, 4, 5).reshape(batch * h_out * w_out, -1)
        wg = codes[gi * og:(gi + 1) * og].reshape(og, -1)
        outs.append(exact.exact_matmul(p, wg).reshape(batch, h_out, w_out, og).transpose(0, 3, 1, 2))
    return np.concatenate(outs, axis=1)


@st.composite
def _convs(draw):
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    padding = (draw(st.integers(0, span_h)), draw(st.integers(0, span_w)))
    h = draw(st.integers(max(1, span_h - 2 * padding[0]), 9))  # may be smaller than the kernel
    w = draw(st.integers(max(1, span_w - 2 * padding[1]), 9))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["binary", "int8", "float32"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    shape = (c_out, c_in // groups, kh, kw)
    mask = rng.random(shape) < draw(st.sampled_from([0.1, 0.5, 1.0]))
    if kind == "binary":
        weights = BinaryWeights(mask, rng.random(shape) < 0.5, np.float32(0.3))
    elif kind == "int8":
        q = (rng.integers(-127, 128, shape) * mask).astype(np.int8)
        weights = Int8Weights(q != 0, q, np.float32(0.01))
    else:
        vals = (rng.normal(0, 1, shape) * mask).astype(np.float32)
        weights = FloatWeights(vals != 0, vals)
    node = Conv2d("conv", weights, stride=stride, padding=padding, dilation=(dh, dw), groups=groups)
    x = (rng.random((draw(st.integers(1, 3)), c_in, h, w)) < draw(st.sampled_from([0.05, 0.3, 1.0]))).astype(np.float64)
    return node, x


@settings(max_examples=150, deadline=None)
@given(_convs())
def test_spike_conv_equals_the_patch_product(case) -> None:
    node, x = case
    codes, rows = _codes_and_rows(node)
    want = _patch_sum(node, codes, x)
    got = _conv_sum(node, codes, x, np.float32, rows)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    if all(r.spikes_exact for r in rows):  # the fast path ran: its float64 sums are the exact ones
        np.testing.assert_array_equal(_spike_conv_sum(node, codes, x).astype(np.float32).view(np.uint32),
                                      want.view(np.uint32))


def test_analog_input_keeps_the_patch_product() -> None:
    """A non-spike input (one value 0.5) takes the checked patch product, not the spike path."""
    rng = np.random.default_rng(1)
    vals = rng.normal(0, 1, (4, 2, 3, 3)).astype(np.float32)
    node = Conv2d("conv", FloatWeights(vals != 0, vals), padding=(1, 1))
    codes, rows = _codes_and_rows(node)
    x = (rng.random((2, 2, 6, 6)) < 0.3).astype(np.float64)
    x[0, 0, 2, 2] = 0.5
    np.testing.assert_array_equal(_conv_sum(node, codes, x, np.float32, rows), _patch_sum(node, codes, x))
