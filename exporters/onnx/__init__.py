"""ONNX exporter: the whole T-step network as one ONNX model, spike for spike equal to the reference.

The model (opset 18, IR version 8) takes the per-step input and returns the output node's
values of every step, ``(T, batch, *out)``, with a symbolic ``batch`` dimension::

    input   direct encoding:       (batch, *in)      float32, fed unchanged at every step
            rate / spikes:         (T, batch, *in)   float32, the encoded input of each step
    output  (T, batch, *out)       float32 (0/1 spikes, or the LI membrane for a readout)
    rec_*   (T, batch, *shape)     per-node values (neuron layers by default), for spike counts

Rate coding keys its draws by the float32 bit patterns of each sample (slt_deploy.ratecode,
docs/semantics.md), which ONNX cannot express (it has no bit cast), so the caller encodes:
:func:`slt_deploy.targets.onnxruntime.run_onnx_file` does it with the seed and the rate
code's name stored in the model's metadata.

Exactness (the rounding contract of docs/semantics.md), operation by operation:

- Binary / int8 layers whose input is known to be integer-valued (spikes, rate-coded input,
  sums/maxima of those) with ``Σ|code|·max|x| < 2^24`` compute ``n = x @ codes`` in float32:
  every partial sum is an integer below 2^24, so the sum is exact in any order. Otherwise
  (analog input, float weights) the sum runs in float64 (``Cast`` → ``MatMul`` → ``Cast``),
  as the reference does. ONNX Runtime has no float64 ``Conv``, so a float64 convolution is
  an explicit im2col (``Pad``, strided ``Slice`` per kernel tap, ``MatMul``).
- Then ``Mul`` by the per-channel scale (binary/int8) and ``Add`` the bias, in float32.
- Sum/Avg pools: exact window sums (a float32 ones-kernel ``Conv`` for integer input, else a
  float64 sum of strided slices in row-major tap order), rounded once, ``Div`` by kH·kW.
  ``MaxPool`` is native. ``Add`` nodes sum in edge order in float32.
- Neuron updates: one ONNX op per floating-point operation of ``slt_deploy.ir.neurons``.
  Run it with graph optimizations disabled (the ONNX Runtime target does): level-1 fusions
  such as ``ConvMulFusion`` fold the scale into the weights and change rounding.
- Nodes whose inputs do not change over time (a directly encoded input and the stateless
  layers fed only by it) are computed once, before the time loop: the same operations on
  the same values, so the same result, T times cheaper.

Weights are stored compactly, per layer the smallest of: ``dense`` (int8 codes; float32 for
float weights), ``bitmask`` (packed keep-mask bits + the kept values: packed sign bits for
binary, int8 or float32 otherwise) or ``index`` (gaps between kept positions as uint8 or
uint16 with an escape code for longer gaps, + the kept values). A small decode subgraph
(``BitShift``/``BitwiseAnd`` unpacking, ``CumSum`` + ``Gather`` / ``Compress`` +
``ScatterElements``) rebuilds the dense code tensor; it depends only on initializers, so a
runtime computes it once (the ONNX Runtime target folds it at load).
ONNX ``sparse_initializer`` is not used: onnx's checker with ``full_check=True`` rejects
sparse initializers consumed by ordinary operators.

Two graph layouts: ``loop`` (the default: one ONNX ``Loop`` whose body is one step, states
loop-carried, per-step outputs as scan outputs; constant size in T) and ``unrolled`` (T
copies of the step sharing the weights, for runtimes without ``Loop``). Measured on a
784-1024-1024-10 MLP they run equally fast in ONNX Runtime; the loop builds and loads
several times faster and does not grow with T (docs/targets-onnx.md).

The package, bottom up (each module imports only those above it):

- ``_meta``: constants, ``metadata_props`` keys (:data:`META`), :func:`model_digest`;
- ``_graph``: one ONNX graph under construction (unique names, initializers);
- ``_encode``: compact weight encodings (numpy); ``_context``: the :class:`Emitter` state
  every emitter shares (caches, integer bounds); ``_decode``: the decode subgraph;
- ``_synapses`` (Linear, Conv2d), ``_stateless`` (pools, Flatten, Add, Input, Output),
  ``_neurons`` (LIF, LI): the ONNX ops of one node kind at one step;
- ``_kinds``: :data:`HANDLERS`, one :class:`KindRule` per node kind (integer-bound rule,
  emitter, record levels, spike state): the only place that knows node kinds;
- ``_builder``: plan, one step, Loop or unrolled layout; ``_export``: the entry points.
"""

from __future__ import annotations

from ._export import BuiltModel, build_model, export_onnx
from ._kinds import HANDLERS, KindRule
from ._meta import (
    EXACT_F32_SUM,
    FORMAT_TAG,
    INPUT_NAME,
    IR_VERSION,
    MAX_MODEL_BYTES,
    META,
    MODES,
    OPSET,
    OUTPUT_NAME,
    RECORDS,
    WEIGHT_STORAGE,
    model_digest,
)

__all__ = ["BuiltModel", "EXACT_F32_SUM", "FORMAT_TAG", "HANDLERS", "INPUT_NAME", "IR_VERSION", "KindRule",
           "MAX_MODEL_BYTES", "META", "MODES", "OPSET", "OUTPUT_NAME", "RECORDS", "WEIGHT_STORAGE", "build_model",
           "export_onnx", "model_digest"]
