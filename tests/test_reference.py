"""Hand-worked cases for the reference simulator and the ticket graph validation.

Every expected array below is worked out by hand in the comment next to it (dyadic values
are chosen so float32 holds every intermediate exactly); none comes from re-running the
simulator's own code. The semantics are those of docs/semantics.md / slt_deploy.ir.neurons.
"""

from __future__ import annotations

import numpy as np
import pytest
import ratecode_oracle

from slt_deploy.errors import SltInputError, SltValidationError
from slt_deploy.ir import (
    IF,
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
    float_linear,
    sequential,
)
from slt_deploy.reference import simulate


def spikes_of(layer, x, T: int, dtype=np.float32) -> np.ndarray:
    """Run ``Input -> layer -> Output`` with direct input ``x`` (batch of one); return (T, *shape)."""
    ticket = sequential(np.shape(x), [layer], T)
    res = simulate(ticket, np.asarray(x, dtype=np.float64)[None], dtype=dtype)
    return res.output[:, 0]


def col(*values: float) -> np.ndarray:
    """A per-step column for a single neuron: shape (T, 1)."""
    return np.array(values, dtype=np.float32)[:, None]


# ----------------------------------------------------------------------------- neurons
def test_if_zero_reset() -> None:
    # IF θ=1 zero reset. Neuron a: I=0.375 -> v .375, .75, 1.125>1 spike->0, .375
    #                    Neuron b: I=0.625 -> v .625, 1.25 spike->0, .625, 1.25 spike
    out = spikes_of(IF("n", (2,), threshold=1.0, reset="zero"), [0.375, 0.625], 4)
    np.testing.assert_array_equal(out, [[0, 0], [0, 1], [1, 0], [0, 1]])


def test_lif_beta_half_zero_reset() -> None:
    # β=0.5, θ=1, I=0.75: v0=.75; v1=.375+.75=1.125 spike->0; v2=.75; v3=1.125 spike
    out = spikes_of(LIF("n", (1,), beta=0.5, threshold=1.0, reset="zero"), [0.75], 4)
    np.testing.assert_array_equal(out, col(0, 1, 0, 1))


def test_lif_beta_half_leak_prevents_firing() -> None:
    # β=0.5, θ=1, I=0.5: v -> .5, .75, .875, .9375, ... approaches 1 from below: never fires
    # (an IF with the same input fires at t=2: v=.5, 1.0 (=θ, no spike), 1.5).
    out = spikes_of(LIF("n", (1,), beta=0.5, threshold=1.0), [0.5], 6)
    np.testing.assert_array_equal(out, col(0, 0, 0, 0, 0, 0))
    out_if = spikes_of(IF("n", (1,), threshold=1.0), [0.5], 3)
    np.testing.assert_array_equal(out_if, col(0, 0, 1))


def test_if_subtract_reset_and_equal_threshold() -> None:
    # IF θ=1 subtract, I=0.75:
    # t0 v=.75 s0 | t1 v=1.5 s1 -> .5 | t2 v=1.25 s1 -> .25 | t3 v=1.0 (== θ) s0 stays 1.0
    # t4 v=1.75 s1 -> .75 | t5 v=1.5 s1 -> .5
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="subtract"), [0.75], 6)
    np.testing.assert_array_equal(out, col(0, 1, 1, 0, 1, 1))


def test_if_zero_reset_same_input() -> None:
    # IF θ=1 zero, I=0.75: .75 | 1.5 s->0 | .75 | 1.5 s->0 | .75 | 1.5 s
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="zero"), [0.75], 6)
    np.testing.assert_array_equal(out, col(0, 1, 0, 1, 0, 1))


def test_v_exactly_threshold_never_spikes() -> None:
    # IF θ=0.5, I=0.25 zero reset: v=.25, .5 (== θ: no spike, strictly greater), .75 spike -> 0
    out = spikes_of(IF("n", (1,), threshold=0.5), [0.25], 3)
    np.testing.assert_array_equal(out, col(0, 0, 1))
    # reset none, θ=1, I=0.5: v = .5, 1.0, 1.5, 2.0 -> the step with v == θ is silent
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="none"), [0.5], 4)
    np.testing.assert_array_equal(out, col(0, 0, 1, 1))


def test_subtract_vs_subtract_delayed_snntorch_timing() -> None:
    # β=0.5, θ=1, I=1.25.
    # subtract (immediate): v0=1.25 s->.25; v1=.125+1.25=1.375 s->.375; v2=.1875+1.25=1.4375 s ... always fires
    out = spikes_of(LIF("n", (1,), beta=0.5, threshold=1.0, reset="subtract"), [1.25], 6)
    np.testing.assert_array_equal(out, col(1, 1, 1, 1, 1, 1))
    # subtract_delayed (snnTorch reset_delay=True: mem = β·mem + I − reset·θ, reset = previous spike):
    # t0 v=0+1.25-0=1.25 s1
    # t1 v=.625+1.25=1.875, -1 -> .875 s0
    # t2 v=.4375+1.25=1.6875, -0 -> 1.6875 s1
    # t3 v=.84375+1.25=2.09375, -1 -> 1.09375 s1
    # t4 v=.546875+1.25=1.796875, -1 -> .796875 s0
    # t5 v=.3984375+1.25=1.6484375, -0 -> s1
    out = spikes_of(LIF("n", (1,), beta=0.5, threshold=1.0, reset="subtract_delayed"), [1.25], 6)
    np.testing.assert_array_equal(out, col(1, 0, 1, 1, 0, 1))


def test_subtract_delayed_if() -> None:
    # IF θ=1, I=0.75 subtract_delayed:
    # t0 .75 s0 | t1 1.5 s1 (kept) | t2 2.25-1=1.25 s1 | t3 2.0-1=1.0 s0 (== θ) | t4 1.75-0 s1 | t5 2.5-1=1.5 s1
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="subtract_delayed"), [0.75], 6)
    np.testing.assert_array_equal(out, col(0, 1, 1, 0, 1, 1))


def test_subtract_delayed_uses_reset_amount() -> None:
    # IF θ=1, r=0.5, I=0.75 subtract_delayed:
    # t0 .75 s0 | t1 1.5 s1 (kept) | t2 2.25-.5=1.75 s1 | t3 2.5-.5=2.0 s1 | t4 2.75-.5=2.25 s1
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="subtract_delayed", reset_amount=0.5), [0.75], 5)
    np.testing.assert_array_equal(out, col(0, 1, 1, 1, 1))
    # θ=2, r=1.5, I=1.25: t0 1.25 s0 | t1 2.5 s1 | t2 3.75-1.5=2.25 s1 | t3 3.5-1.5=2.0 s0 (== θ) | t4 3.25 s1
    out = spikes_of(IF("n", (1,), threshold=2.0, reset="subtract_delayed", reset_amount=1.5), [1.25], 5)
    np.testing.assert_array_equal(out, col(0, 1, 1, 0, 1))


def test_leaky_charge_rounds_product_then_sum() -> None:
    # β = 0.9f, I = 0.3f, reset none. v0 = 0.3f. v1 = fl(fl(0.9f · 0.3f) + 0.3f) = fl(0.27f + 0.3f) = 0.57000005f
    # (a fused multiply-add would give 0.57f, one ulp lower). v2 = 0.813f.
    # Neuron a: θ = 0.57000005f: v1 == θ -> silent at t1, fires at t2.
    # Neuron b: θ = 0.57f (one ulp below): fires at t1 only with the two-rounding order.
    theta = np.array([0.57000005, 0.57], dtype=np.float32)
    out = spikes_of(LIF("n", (2,), beta=0.9, threshold=theta, reset="none"), [0.3, 0.3], 3)
    np.testing.assert_array_equal(out, [[0, 0], [0, 1], [1, 1]])


def test_decay_input_rounding_order() -> None:
    # τ = 3, I = 0.7f, reset none, each step v + fl(fl(I − v) / τ):
    # v0 = 0 + 0.7f/3 = 0.23333333f
    # v1 = v0 + fl(0.46666664f / 3) = 0.23333333f + 0.15555555f = 0.3888889f
    # v2 = v1 + fl(0.3111111f / 3) = 0.3888889f + 0.1037037f = 0.4925926f
    # (the reparametrization v·(1 − 1/τ) + I/τ gives 0.49259257f, one ulp lower)
    # Neuron a: θ = 0.4925926f -> v2 == θ: silent at t2, fires at t3. Neuron b: θ one ulp lower fires at t2.
    theta = np.array([0.4925926, 0.49259257], dtype=np.float32)
    out = spikes_of(LIF("n", (2,), threshold=theta, reset="none", charge="decay_input", tau=3.0), [0.7, 0.7], 4)
    np.testing.assert_array_equal(out, [[0, 0], [0, 0], [0, 1], [1, 1]])


def test_leaky_tau_charge() -> None:
    # SpikingJelly decay_input=False: v = (v − v/τ) + I. τ=2, I=1, θ=1.25 zero reset:
    # t0 (0 − 0) + 1 = 1 s0 | t1 (1 − .5) + 1 = 1.5 s1 -> 0 | t2 1 s0 | t3 1.5 s1
    out = spikes_of(LIF("n", (1,), threshold=1.25, charge="leaky_tau", tau=2.0), [1.0], 4)
    np.testing.assert_array_equal(out, col(0, 1, 0, 1))
    # rounding order: τ = 1.5, I = 0.3f, reset none.
    # v0 = 0.3f; v1 = fl(fl(0.3f − fl(0.3f/1.5)) + 0.3f) = fl(fl(0.3f − 0.2f) + 0.3f) = fl(0.10000001f + 0.3f)
    #    = 0.40000004f  (v·(1 − 1/τ) + I would give 0.4f, one ulp lower)
    # Neuron a: θ = 0.40000004f silent at t1; neuron b: θ = 0.4f fires at t1; both fire at t2 (v2 ≈ 0.4333).
    theta = np.array([0.40000004, 0.4], dtype=np.float32)
    out = spikes_of(LIF("n", (2,), threshold=theta, reset="none", charge="leaky_tau", tau=1.5), [0.3, 0.3], 3)
    np.testing.assert_array_equal(out, [[0, 0], [0, 1], [1, 1]])


def test_reset_none() -> None:
    # IF θ=1, I=0.75 no reset: v = .75, 1.5, 2.25, 3.0 -> fires from t1 on
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="none"), [0.75], 4)
    np.testing.assert_array_equal(out, col(0, 1, 1, 1))


def test_reset_amount_differs_from_threshold() -> None:
    # IF θ=1, r=0.5 subtract, I=0.75: .75 s0 | 1.5 s1 -> 1.0 | 1.75 s1 -> 1.25 | 2.0 s1 -> 1.5
    out = spikes_of(IF("n", (1,), threshold=1.0, reset="subtract", reset_amount=0.5), [0.75], 4)
    np.testing.assert_array_equal(out, col(0, 1, 1, 1))


def test_neuron_bias() -> None:
    # LIF bias 0.25 + input 0.5 = I 0.75; β=0.5 θ=1 zero: as test_lif_beta_half_zero_reset -> 0,1,0,1
    out = spikes_of(LIF("n", (1,), beta=0.5, threshold=1.0, bias=0.25), [0.5], 4)
    np.testing.assert_array_equal(out, col(0, 1, 0, 1))
    # per-neuron bias: [0, 0.5] with input 0.5, IF θ=1 zero: a: .5, 1.0, 1.5 s | b: 1.0, 2.0 s, 1.0
    out = spikes_of(IF("n", (2,), threshold=1.0, bias=np.array([0.0, 0.5])), [0.5, 0.5], 3)
    np.testing.assert_array_equal(out, [[0, 0], [0, 1], [1, 0]])


def test_decay_input_charge() -> None:
    # v = v + (I − v)/τ, τ=2, θ=1, I=1.5, zero reset:
    # v0 = 0 + 1.5/2 = .75 | v1 = .75 + .75/2 = 1.125 s -> 0 | v2 = .75 | v3 = 1.125 s
    out = spikes_of(LIF("n", (1,), threshold=1.0, charge="decay_input", tau=2.0), [1.5], 4)
    np.testing.assert_array_equal(out, col(0, 1, 0, 1))
    # subtract reset, τ=4, θ=1, I=2:
    # v0 = 0 + 2/4 = .5 | v1 = .5 + 1.5/4 = .875 | v2 = .875 + 1.125/4 = 1.15625 s -> .15625
    # v3 = .15625 + 1.84375/4 = .6171875 | v4 = .6171875 + 1.3828125/4 = .962890625
    # v5 = .962890625 + 1.037109375/4 = 1.22216796875 s
    out = spikes_of(LIF("n", (1,), threshold=1.0, charge="decay_input", tau=4.0, reset="subtract"), [2.0], 6)
    np.testing.assert_array_equal(out, col(0, 0, 1, 0, 0, 1))


def test_li_readout_membrane() -> None:
    # LI β=0.5 bias .25, input 1: v0=1.25, v1=.625+1.25=1.875, v2=.9375+1.25=2.1875
    out = spikes_of(LI("r", (1,), beta=0.5, bias=0.25), [1.0], 3)
    np.testing.assert_array_equal(out, col(1.25, 1.875, 2.1875))


# ---------------------------------------------------------------------- graph structure
def test_recurrent_layer_sees_previous_spikes() -> None:
    # input .75 -> fc (w=1) -> add <- rec (w=-.5) <~ lif (recurrent); add -> IF θ=1 zero -> output
    # t0: rec=0 (zeros at t=0), add=.75, v=.75 s0
    # t1: rec=0, v=1.5 s1 -> 0
    # t2: rec=-.5, add=.25, v=.25 s0
    # t3: rec=0, v=1.0 (== θ) s0
    # t4: v=1.75 s1 -> 0 | t5: rec -.5, v=.25 | t6: v=1.0 | t7: v=1.75 s1
    nodes = (
        Input("in", shape=(1,)), float_linear("fc", np.array([[1.0]])), float_linear("rec", np.array([[-0.5]])),
        Add("add"), IF("lif", (1,), threshold=1.0), Output("out"),
    )
    edges = (Edge("in", "fc"), Edge("fc", "add"), Edge("rec", "add"), Edge("lif", "rec", recurrent=True),
             Edge("add", "lif"), Edge("lif", "out"))
    ticket = Ticket(nodes, edges, timesteps=8)
    res = simulate(ticket, np.array([[0.75]]))
    np.testing.assert_array_equal(res.output[:, 0], col(0, 1, 0, 0, 1, 0, 0, 1))
    np.testing.assert_array_equal(res.layers["rec"][:, 0], col(0, 0, -0.5, 0, 0, -0.5, 0, 0))
    np.testing.assert_array_equal(res.layers["add"][:, 0], col(.75, .75, .25, .75, .75, .25, .75, .75))
    # spike counts per step over the batch
    np.testing.assert_array_equal(res.spike_counts["lif"], [0, 1, 0, 0, 1, 0, 0, 1])


def test_add_sums_in_edge_order() -> None:
    # Three branches give a=1, b=c=2^-24 (float32). In float32:
    # (a + b) + c = (1 + 2^-24) + 2^-24 = 1 + 2^-24 -> ties to even -> 1, then again 1.
    # (b + c) + a = 2^-23 + 1 = 1 + 2^-23 (exactly representable).
    tiny = 2.0 ** -24

    def ticket(order: list[str]) -> Ticket:
        nodes = (Input("in", shape=(1,)), float_linear("a", np.array([[1.0]])),
                 float_linear("b", np.array([[tiny]])), float_linear("c", np.array([[tiny]])),
                 Add("sum"), Output("out"))
        edges = [Edge("in", n) for n in "abc"] + [Edge(n, "sum") for n in order] + [Edge("sum", "out")]
        return Ticket(nodes, tuple(edges), timesteps=1)

    x = np.array([[1.0]])
    assert simulate(ticket(["a", "b", "c"]), x).output[0, 0, 0] == np.float32(1.0)
    assert simulate(ticket(["b", "c", "a"]), x).output[0, 0, 0] == np.float32(1.0 + 2.0 ** -23)


def test_residual_block_of_spikes() -> None:
    # in -> lif1 (IF θ=.5) ; lif1 -> fc (w = [[1, 1], [0, -1]]) -> add ; lif1 -> add (skip) ; add -> out
    # x = [1, .25]: lif1 v = [1, .25] -> s=[1, 0] at t0; t1: v=[1, .5] -> s=[1, 0] (.5 == θ); t2: [1, .75] -> [1, 1]
    # fc(s) = [s0 + s1, -s1]; add = fc + s = [2*s0 + s1, 0]
    # t0: s=[1,0]: fc=[1, 0]  add=[2, 0] | t1 same | t2: s=[1,1]: fc=[2,-1] add=[3, 0]
    nodes = (Input("in", shape=(2,)), IF("lif1", (2,), threshold=0.5),
             float_linear("fc", np.array([[1.0, 1.0], [0.0, -1.0]])), Add("add"), Output("out"))
    edges = (Edge("in", "lif1"), Edge("lif1", "fc"), Edge("fc", "add"), Edge("lif1", "add"), Edge("add", "out"))
    res = simulate(Ticket(nodes, edges, timesteps=3), np.array([[1.0, 0.25]]))
    np.testing.assert_array_equal(res.output[:, 0], [[2, 0], [2, 0], [3, 0]])
    assert not res.spiking  # the output is an Add, not a spiking layer


# ------------------------------------------------------------------------------- pools
IMG = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]


def pool_out(pool, x: np.ndarray = IMG) -> np.ndarray:
    ticket = sequential(x.shape[1:], [pool], 1)
    return simulate(ticket, x).output[0, 0, 0]


def test_sum_and_avg_pool_with_padding() -> None:
    # k=2, s=2, p=1 on the zero-padded 5x5 image:
    #  0 0 0 0 0
    #  0 1 2 3 0      windows: (0,0)=0+0+0+1=1  (0,1)=0+0+2+3=5
    #  0 4 5 6 0               (1,0)=0+4+0+7=11 (1,1)=5+6+8+9=28
    #  0 7 8 9 0
    #  0 0 0 0 0
    np.testing.assert_array_equal(pool_out(SumPool2d("p", kernel_size=2, stride=2, padding=1)), [[1, 5], [11, 28]])
    # Avg counts the padding: / 4
    np.testing.assert_array_equal(pool_out(AvgPool2d("p", kernel_size=2, stride=2, padding=1)),
                                  [[0.25, 1.25], [2.75, 7.0]])
    # k=3, s=1, p=1: corner 1+2+4+5=12, edge 1+2+3+4+5+6=21, centre 45, ...
    sums = np.array([[12, 21, 16], [27, 45, 33], [24, 39, 28]], dtype=np.float32)
    np.testing.assert_array_equal(pool_out(SumPool2d("p", kernel_size=3, stride=1, padding=1)), sums)
    # Avg: float32 sum, then one float32 division by 9 (e.g. 12/9 rounded once to float32)
    np.testing.assert_array_equal(pool_out(AvgPool2d("p", kernel_size=3, stride=1, padding=1)),
                                  sums / np.float32(9))


def test_max_pool_padding_never_wins() -> None:
    # Same windows as above on the negated image: padding is -inf, so negatives survive.
    # (0,0): max(-1)=-1  (0,1): max(-2,-3)=-2  (1,0): max(-4,-7)=-4  (1,1): max(-5,-6,-8,-9)=-5
    np.testing.assert_array_equal(pool_out(MaxPool2d("p", kernel_size=2, stride=2, padding=1), -IMG),
                                  [[-1, -2], [-4, -5]])
    # positive image: (0,0)=1 (0,1)=3 (1,0)=7 (1,1)=9
    np.testing.assert_array_equal(pool_out(MaxPool2d("p", kernel_size=2, stride=2, padding=1)), [[1, 3], [7, 9]])
    # non-square window k=(1,2), default stride = kernel: rows kept, column pairs (1,2) (4,5) (7,8)
    np.testing.assert_array_equal(pool_out(MaxPool2d("p", kernel_size=(1, 2))), [[2], [5], [8]])


# ------------------------------------------------------------------------------- conv
def conv(weights: np.ndarray, **kw) -> Conv2d:
    w = np.asarray(weights, dtype=np.float32)
    return Conv2d("c", weights=FloatWeights(w != 0, w), **kw)


def conv_out(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    return simulate(sequential(x.shape[1:], [layer], 1), x).output[0, 0]


def test_conv_stride_padding() -> None:
    # kernel [[1,2],[3,4]], stride 2, padding 1 on the padded 5x5 of [[1..9]]:
    # (0,0): [[0,0],[0,1]] -> 4*1 = 4
    # (0,1): [[0,0],[2,3]] -> 3*2 + 4*3 = 18
    # (1,0): [[0,4],[0,7]] -> 2*4 + 4*7 = 36
    # (1,1): [[5,6],[8,9]] -> 5 + 12 + 24 + 36 = 77
    out = conv_out(conv([[[[1, 2], [3, 4]]]], stride=2, padding=1), IMG)
    np.testing.assert_array_equal(out, [[[4, 18], [36, 77]]])


def test_conv_dilation_and_asymmetric_stride() -> None:
    # kernel [[1,2],[3,4]] dilation 2 on [[1..9]]: taps (0,0),(0,2),(2,0),(2,2) = 1*1 + 2*3 + 3*7 + 4*9 = 64
    out = conv_out(conv([[[[1, 2], [3, 4]]]], dilation=2), IMG)
    np.testing.assert_array_equal(out, [[[64]]])
    # kernel 1x2 [[1, -1]], stride (2, 1): rows 0 and 2, pairs (a,b) -> a - b = -1 everywhere
    out = conv_out(conv([[[[1, -1]]]], stride=(2, 1)), IMG)
    np.testing.assert_array_equal(out, [[[-1, -1], [-1, -1]]])


def test_conv_groups_and_bias() -> None:
    # C_in=2, C_out=4, groups=2, 1x1 kernels [1, 2, 3, 4], bias [0, .5, 0, -1]:
    # channels 0,1 read input channel 0; channels 2,3 read input channel 1.
    x = np.array([[[[1.0, 2.0]], [[10.0, 20.0]]]])  # (1, C=2, H=1, W=2)
    w = np.array([1, 2, 3, 4], dtype=np.float32).reshape(4, 1, 1, 1)
    out = conv_out(conv(w, groups=2, bias=np.array([0, 0.5, 0, -1])), x)
    # ch0 = 1*[1,2] = [1,2]; ch1 = 2*[1,2] + .5 = [2.5, 4.5]; ch2 = 3*[10,20] = [30,60]; ch3 = 4*[10,20] - 1 = [39, 79]
    np.testing.assert_array_equal(out, [[[1, 2]], [[2.5, 4.5]], [[30, 60]], [[39, 79]]])


def test_conv_two_input_channels_sum() -> None:
    # C_in=2 -> C_out=1, 1x1 kernel [2, -1]: out = 2*x0 - x1
    x = np.array([[[[1.0, 2.0]], [[10.0, 20.0]]]])
    out = conv_out(conv(np.array([2, -1], dtype=np.float32).reshape(1, 2, 1, 1)), x)
    np.testing.assert_array_equal(out, [[[-8, -16]]])


# ------------------------------------------------------------------------- weight kinds
def test_binary_weights_alpha_times_sign_sum() -> None:
    # mask [[1,1],[1,0]], negative [[0,1],[0,0]] -> signs [[+1,-1],[+1,0]]; α = [.5, 3]; bias [.25, -1]
    w = BinaryWeights(mask=np.array([[1, 1], [1, 0]], bool), negative=np.array([[0, 1], [0, 0]], bool),
                      alpha=np.array([0.5, 3.0]))
    layer = Linear("fc", weights=w, bias=np.array([0.25, -1.0]))
    ticket = sequential((2,), [layer], 3, Encoding("spikes"))
    x = np.array([[[1, 1]], [[1, 0]], [[0, 0]]], dtype=np.float64)  # (T=3, batch=1, 2)
    out = simulate(ticket, x).output[:, 0]
    # t0 x=[1,1]: n=[1-1, 1] = [0, 1] -> [0*.5 + .25, 1*3 - 1] = [.25, 2]
    # t1 x=[1,0]: n=[1, 1]            -> [.5 + .25, 3 - 1]    = [.75, 2]
    # t2 x=[0,0]: n=[0, 0]            -> bias only            = [.25, -1]
    np.testing.assert_array_equal(out, [[0.25, 2], [0.75, 2], [0.25, -1]])


def test_binary_scale_applied_once_to_the_integer_sum() -> None:
    # 7 positive kept weights, α = float32(0.543625), 7 input spikes:
    # rule: I = float32(n=7) · α (one rounding) = 3.805375, whereas adding α seven times in
    # float32 gives 3.8053746: the scale multiplies the exact integer sum once.
    alpha = np.float32(0.543625)
    w = BinaryWeights(mask=np.ones((1, 7), bool), negative=np.zeros((1, 7), bool), alpha=np.array([alpha]))
    out = simulate(sequential((7,), [Linear("fc", weights=w)], 1), np.ones((1, 7))).output[0, 0, 0]
    assert out == np.float32(7) * alpha
    repeated = np.float32(0)
    for _ in range(7):
        repeated = np.float32(repeated + alpha)
    assert out != repeated  # documents that the order matters here


def test_int8_weights_scale_times_code_sum() -> None:
    # q = [[127, -128], [5, 0]] (mask all), scale = [.5, .25]
    w = Int8Weights(mask=np.ones((2, 2), bool), q=np.array([[127, -128], [5, 0]], np.int8), scale=np.array([0.5, 0.25]))
    ticket = sequential((2,), [Linear("fc", weights=w)], 2, Encoding("spikes"))
    out = simulate(ticket, np.array([[[1, 1]], [[1, 0]]], dtype=np.float64)).output[:, 0]
    # t0 x=[1,1]: n = [127-128, 5] = [-1, 5] -> [-.5, 1.25]
    # t1 x=[1,0]: n = [127, 5]               -> [63.5, 1.25]
    np.testing.assert_array_equal(out, [[-0.5, 1.25], [63.5, 1.25]])


def test_int8_masked_codes_do_not_count() -> None:
    # q = [[3, 4]] but mask [[1, 0]]: the masked 4 is dropped (canonical form) -> n = 3*x0
    w = Int8Weights(mask=np.array([[True, False]]), q=np.array([[3, 4]], np.int8), scale=np.array([2.0]))
    out = simulate(sequential((2,), [Linear("fc", weights=w)], 1), np.array([[1.0, 1.0]])).output[0, 0]
    np.testing.assert_array_equal(out, [6.0])  # 2 * 3


def test_float_sparse_linear_into_lif() -> None:
    # W = [[.5, 0], [.25, .25]] (mask = nonzero); x = [1, 1] -> I = [.5, .5]; IF θ=.75 zero:
    # v: .5, 1.0 s -> 0, .5 | both neurons alike
    fc = float_linear("fc", np.array([[0.5, 0.0], [0.25, 0.25]]))
    ticket = sequential((2,), [fc, IF("lif", (2,), threshold=0.75)], 3)
    res = simulate(ticket, np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(res.output[:, 0], [[0, 0], [1, 1], [0, 0]])
    np.testing.assert_array_equal(res.layers["fc"][:, 0], [[0.5, 0.5]] * 3)
    assert res.spiking and res.spikes is res.output
    np.testing.assert_array_equal(res.counts, [[1, 1]])


def test_flatten_c_order() -> None:
    # (C=2, H=1, W=2) [[a, b]], [[c, d]] -> [a, b, c, d]
    x = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    res = simulate(sequential((2, 1, 2), [Flatten("f")], 1), x)
    np.testing.assert_array_equal(res.output[0, 0], [1, 2, 3, 4])


# ------------------------------------------------------------------------------ encodings
def test_rate_encoding_matches_documented_generator() -> None:
    # the rate code 'splitmix64-keyed/1' as docs/semantics.md writes it, from a scalar oracle
    ticket = sequential((4,), [], 5, Encoding("rate", seed=1234))
    x = np.array([[0.0, 0.3, 0.7, 1.0], [0.5, 0.5, 0.5, 0.5]])
    out = simulate(ticket, x).output
    np.testing.assert_array_equal(out, ratecode_oracle.spikes(1234, x, 5).astype(np.float32))
    assert not out[:, 0, 0].any()  # p = 0 never fires (u >= 0)
    assert out[:, 0, 3].all()      # p = 1 always fires (u < 1)


def test_rate_encoding_determinism() -> None:
    x = np.full((2, 32), 0.5)
    a = simulate(sequential((32,), [], 8, Encoding("rate", seed=7)), x).output
    b = simulate(sequential((32,), [], 8, Encoding("rate", seed=7)), x).output
    c = simulate(sequential((32,), [], 8, Encoding("rate", seed=8)), x).output
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # 512 fair coins agreeing by chance: p = 2^-512


def test_direct_encoding_repeats_input() -> None:
    x = np.array([[0.25, -1.5]])
    out = simulate(sequential((2,), [], 3), x).output
    np.testing.assert_array_equal(out, np.repeat(x[None].astype(np.float32), 3, axis=0))


def test_spike_train_input_used_as_is() -> None:
    x = np.array([[[1, 0]], [[0, 1]], [[1, 1]]], dtype=np.float64)
    out = simulate(sequential((2,), [], 3, Encoding("spikes")), x).output
    np.testing.assert_array_equal(out, x)


def test_float64_mode() -> None:
    # Same dyadic LIF case in float64 gives the same spikes; recorded arrays are float64.
    out = spikes_of(LIF("n", (1,), beta=0.5, threshold=1.0), [0.75], 4, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, col(0, 1, 0, 1))
    # Precision is really float64: x = 1 + 2^-30 rounds to 1.0 in float32 (v == θ: silent at t0)
    # but stays above θ = 1 in float64 (fires at t0).
    x = [1.0 + 2.0 ** -30]
    assert spikes_of(IF("n", (1,), threshold=1.0), x, 1, dtype=np.float32)[0, 0] == 0
    assert spikes_of(IF("n", (1,), threshold=1.0), x, 1, dtype=np.float64)[0, 0] == 1


def test_bad_dtype_rejected() -> None:
    for bad in (np.float16, "float16", np.int32, None, "nonsense"):
        with pytest.raises(SltInputError, match="dtype"):  # an SltError (and a ValueError)
            simulate(sequential((1,), [], 1), np.ones((1, 1)), dtype=bad)


def test_dtype_spellings() -> None:
    # np.float32, np.dtype("float32") and "float32" are one working precision (the zero reset
    # and the Avg pool divide/fill with a scalar of that type). IF θ=1 zero, I=.75: 0,1,0,1.
    for spelling in (np.float32, np.dtype("float32"), "float32", np.float64, np.dtype("float64"), "float64"):
        out = spikes_of(IF("n", (1,), threshold=1.0), [0.75], 4, dtype=spelling)
        assert out.dtype == np.dtype(spelling)
        np.testing.assert_array_equal(out, col(0, 1, 0, 1))
    pooled = simulate(sequential((1, 2, 2), [AvgPool2d("p", 2)], 1), IMG[:, :, :2, :2], dtype=np.dtype("float32"))
    np.testing.assert_array_equal(pooled.output.ravel(), [3.0])  # (1 + 2 + 4 + 5) / 4


def test_record_false_keeps_output_only() -> None:
    ticket = sequential((1,), [IF("n", (1,), threshold=1.0)], 4)
    res = simulate(ticket, np.array([[0.75]]), record=False)
    assert set(res.layers) == {"output"}
    np.testing.assert_array_equal(res.output[:, 0], col(0, 1, 0, 1))


# --------------------------------------------------------------------------- input errors
def test_spike_train_wrong_T() -> None:
    ticket = sequential((2,), [], 3, Encoding("spikes"))
    with pytest.raises(SltInputError, match="time steps"):
        simulate(ticket, np.zeros((4, 1, 2)))


def test_nan_input() -> None:
    ticket = sequential((2,), [], 3)
    with pytest.raises(SltInputError, match="NaN"):
        simulate(ticket, np.array([[0.0, np.nan]]))
    with pytest.raises(SltInputError, match="NaN"):
        simulate(ticket, np.array([[np.inf, 0.0]]))


def test_wrong_shape_input() -> None:
    ticket = sequential((2,), [], 3)
    with pytest.raises(SltInputError, match="shape"):
        simulate(ticket, np.zeros((1, 3)))
    with pytest.raises(SltInputError, match="shape"):
        simulate(ticket, np.zeros(2))  # batch axis missing
    with pytest.raises(SltInputError, match="shape"):
        simulate(sequential((2,), [], 3, Encoding("spikes")), np.zeros((1, 2)))  # T axis missing
    with pytest.raises(SltInputError, match="empty"):
        simulate(ticket, np.zeros((0, 2)))


def test_rate_input_out_of_range_and_non_numeric() -> None:
    with pytest.raises(SltInputError, match=r"\[0, 1\]"):
        simulate(sequential((2,), [], 3, Encoding("rate", seed=0)), np.array([[0.5, 1.5]]))
    with pytest.raises(SltInputError, match="numeric"):
        simulate(sequential((2,), [], 3), np.array([["a", "b"]]))


# ------------------------------------------------------------------------ graph validation
def _mlp_nodes() -> list:
    return [Input("in", shape=(2,)), float_linear("fc", np.ones((3, 2))), IF("lif", (3,)), Output("out")]


def _chain(nodes: list) -> list[Edge]:
    return [Edge(a.name, b.name) for a, b in zip(nodes, nodes[1:], strict=False)]


def test_valid_mlp_builds() -> None:
    nodes = _mlp_nodes()
    t = Ticket(tuple(nodes), tuple(_chain(nodes)), timesteps=2)
    assert t.order == ("in", "fc", "lif", "out")
    assert t.shapes["lif"] == (3,)


def test_duplicate_names() -> None:
    nodes = [Input("in", shape=(3,)), IF("x", (3,)), IF("x", (3,)), Output("out")]
    with pytest.raises(SltValidationError, match="duplicate node name 'x'"):
        Ticket(tuple(nodes), tuple(_chain(nodes)), timesteps=2)


def test_shape_mismatch_along_edge_names_node() -> None:
    # Input gives 3 features, fc expects 2
    nodes = [Input("in", shape=(3,)), float_linear("fc", np.ones((3, 2))), IF("lif", (3,)), Output("out")]
    with pytest.raises(SltValidationError, match="'fc'"):
        Ticket(tuple(nodes), tuple(_chain(nodes)), timesteps=2)
    # neuron layer shape disagrees with its input
    nodes = [Input("in", shape=(2,)), float_linear("fc", np.ones((3, 2))), IF("lif", (4,)), Output("out")]
    with pytest.raises(SltValidationError, match="'lif'"):
        Ticket(tuple(nodes), tuple(_chain(nodes)), timesteps=2)
    # Add inputs disagree
    nodes = (Input("in", shape=(2,)), float_linear("a", np.ones((3, 2))), Add("sum"), Output("out"))
    edges = (Edge("in", "a"), Edge("a", "sum"), Edge("in", "sum"), Edge("sum", "out"))
    with pytest.raises(SltValidationError, match="'sum'"):
        Ticket(nodes, edges, timesteps=2)


def test_cycle_without_recurrent_edge() -> None:
    nodes = (Input("in", shape=(1,)), float_linear("fc", np.ones((1, 1))), Add("add"), IF("lif", (1,)), Output("out"))
    edges = (Edge("in", "fc"), Edge("fc", "add"), Edge("lif", "add"), Edge("add", "lif"), Edge("lif", "out"))
    with pytest.raises(SltValidationError, match="cycle.*'add'.*'lif'"):
        Ticket(nodes, edges, timesteps=2)
    # the same graph with the back edge marked recurrent is fine
    edges = edges[:2] + (Edge("lif", "add", recurrent=True),) + edges[3:]
    Ticket(nodes, edges, timesteps=2)


def test_recurrent_edge_from_non_neuron() -> None:
    nodes = (Input("in", shape=(1,)), float_linear("fc", np.ones((1, 1))), Add("add"), IF("lif", (1,)), Output("out"))
    edges = (Edge("in", "add"), Edge("fc", "add"), Edge("add", "fc", recurrent=True), Edge("add", "lif"),
             Edge("lif", "out"))
    with pytest.raises(SltValidationError, match="recurrent edge add -> fc"):
        Ticket(nodes, edges, timesteps=2)


def test_nan_parameters() -> None:
    with pytest.raises(SltValidationError, match="'lif'.*threshold.*NaN"):
        LIF("lif", (2,), threshold=np.array([1.0, np.nan]))
    with pytest.raises(SltValidationError, match="'lif'.*beta.*NaN"):
        LIF("lif", (2,), beta=np.nan)
    with pytest.raises(SltValidationError, match="'fc'.*bias.*NaN"):
        float_linear("fc", np.ones((2, 2)), bias=np.array([0.0, np.inf]))
    # weights are built before the node, so the message cannot name it; it still refuses
    with pytest.raises(SltValidationError, match="NaN"):
        FloatWeights(np.ones((1, 1), bool), np.array([[np.nan]]))


def test_beta_out_of_range() -> None:
    with pytest.raises(SltValidationError, match="'lif'.*beta"):
        LIF("lif", (2,), beta=1.5)
    with pytest.raises(SltValidationError, match="'lif'.*beta"):
        LIF("lif", (2,), beta=np.array([0.5, -0.1]))
    with pytest.raises(SltValidationError, match="'ro'.*beta"):
        LI("ro", (2,), beta=2.0)
    LIF("lif", (2,), beta=np.array([0.0, 1.0]))  # both ends are allowed


def test_dead_node() -> None:
    nodes = _mlp_nodes() + [IF("orphan", (2,))]
    edges = _chain(_mlp_nodes()) + [Edge("in", "orphan")]
    with pytest.raises(SltValidationError, match="'orphan'.*does not contribute"):
        Ticket(tuple(nodes), tuple(edges), timesteps=2)


def test_unknown_reset_and_charge() -> None:
    with pytest.raises(SltValidationError, match="'lif'.*reset.*'hard'"):
        LIF("lif", (2,), reset="hard")
    with pytest.raises(SltValidationError, match="'lif'.*charge"):
        LIF("lif", (2,), charge="exp")
    with pytest.raises(SltValidationError, match="'lif'.*tau"):
        LIF("lif", (2,), charge="decay_input")  # needs tau
    with pytest.raises(SltValidationError, match="'lif'.*tau"):
        LIF("lif", (2,), charge="decay_input", tau=0.5)  # tau < 1


def test_other_graph_errors() -> None:
    nodes = _mlp_nodes()
    with pytest.raises(SltValidationError, match="unknown node 'nope'"):
        Ticket(tuple(nodes), tuple(_chain(nodes) + [Edge("nope", "out")]), timesteps=2)
    with pytest.raises(SltValidationError, match="'lif'.*needs exactly 1"):
        Ticket(tuple(nodes), tuple(_chain(nodes) + [Edge("in", "lif")]), timesteps=2)
    with pytest.raises(SltValidationError, match="timesteps"):
        Ticket(tuple(nodes), tuple(_chain(nodes)), timesteps=0)
    with pytest.raises(SltValidationError, match="exactly one Output"):
        Ticket(tuple(nodes[:-1]), tuple(_chain(nodes[:-1])), timesteps=2)
    with pytest.raises(SltValidationError, match="seed"):
        Encoding("rate")
    with pytest.raises(SltValidationError, match="'c'.*groups"):
        Conv2d("c", weights=FloatWeights(np.ones((3, 1, 1, 1), bool), np.ones((3, 1, 1, 1))), groups=2)
    with pytest.raises(SltValidationError, match="'p'.*padding"):
        MaxPool2d("p", kernel_size=2, padding=2)


@pytest.mark.slow
def test_spike_counts_exact_beyond_float32_integers() -> None:
    # 4097 samples x 4096 IF neurons, θ = .5, input 1 everywhere except 4095 zeros in the last
    # sample: exactly 4097·4096 − 4095 = 2^24 + 1 spikes at t=0. A float32 sum cannot hold
    # 2^24 + 1 (it rounds to 2^24), so the count must be taken in integers.
    n = 2**12
    x = np.ones((n + 1, n), dtype=np.float32)
    x[-1, 1:] = 0
    res = simulate(sequential((n,), [IF("lif", (n,), threshold=0.5)], 1), x)
    assert res.spike_counts["lif"].tolist() == [2**24 + 1]


def test_spikes_seen_through_flatten_and_maxpool_are_still_spikes() -> None:
    """A spiking layer followed by MaxPool and Flatten outputs 0/1 values: Result.spikes is set."""
    from slt_deploy.ir import Conv2d, Flatten, FloatWeights, MaxPool2d, sequential

    w = np.ones((2, 1, 1, 1), np.float32)
    t = sequential((1, 2, 2), [Conv2d("c", FloatWeights(w != 0, w)), LIF("l", shape=(2, 2, 2), threshold=0.5),
                               MaxPool2d("p", 2), Flatten("f")], 3)
    r = simulate(t, np.array([[[[1.0, 0.0], [0.0, 0.0]]]]))
    assert t.output_is_spiking and r.spikes is not None
    assert np.array_equal(r.spikes[:, 0], np.ones((3, 2)))  # max over the window with one firing pixel


def test_synaptic_sum_is_exact_then_rounded_once() -> None:
    """1 + 2^-24 is a float32 midpoint; the 1e-40 weight makes the exact sum round up to 1 + 2^-23.

    Plain float64 accumulation drops the 1e-40 term, lands on the midpoint and rounds to 1.0.
    """
    from slt_deploy.ir import Encoding, FloatWeights, sequential

    w = np.array([[1.0, 2.0**-24, 1e-40]], np.float32)
    t = sequential((3,), [Linear("fc", FloatWeights(w != 0, w)), LI("ro", (1,), beta=1.0)], 1, Encoding("spikes"))
    out = simulate(t, np.ones((1, 1, 3), np.float32)).output
    assert float(out.ravel()[0]) == float(np.float32(1 + 2.0**-23))


def test_static_input_sums_once_per_run_and_runs_stay_independent(monkeypatch) -> None:
    """Direct input is the same every step: the first layer's exact sums are computed once per
    run (T+1 products for a 2-layer net, not 2T), and the next run with other values starts anew."""
    from slt_deploy import exact

    calls = []
    real = exact.exact_matmul
    monkeypatch.setattr(exact, "exact_matmul", lambda *a, **k: calls.append(1) or real(*a, **k))
    w1 = FloatWeights(np.ones((2, 2), bool), np.array([[0.5, -0.25], [1.0, 0.75]], np.float32))
    w2 = FloatWeights(np.ones((1, 2), bool), np.array([[1.0, 1.0]], np.float32))
    t = sequential((2,), [Linear("a", w1), LIF("l", (2,), beta=0.5, threshold=0.4),
                          Linear("b", w2), LI("ro", (1,), beta=1.0)], 4, Encoding("direct"))
    first = simulate(t, np.array([[1.0, 1.0]], np.float32))
    assert len(calls) == 1 + 4
    second = simulate(t, np.array([[0.0, 0.0]], np.float32))
    assert not np.array_equal(first.output, second.output) and np.all(second.output == 0.0)
