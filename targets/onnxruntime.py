"""The ONNX Runtime target: runs the ONNX model of a ticket, spike for spike equal to the reference.

``run(ticket, x)`` builds the model :mod:`slt_deploy.exporters.onnx` exports (same graph,
same compact weights) and runs it; ``run_onnx_file(path, x)`` runs an exported ``.onnx``
file, which it treats as untrusted. Both return a :class:`~slt_deploy.result.Result`.

Exactness needs ONNX Runtime's graph optimizations off (``ORT_DISABLE_ALL``): level-1
"basic" rewrites include ``ConvMulFusion``, which folds the per-channel scale into the
convolution weights and so changes float32 rounding (measured: docs/targets-onnx.md). Instead, this
target folds the model's constant subgraph (the weight decoders: bit unpacking, index
expansion, casts) itself, once per session, by running exactly those nodes with ONNX
Runtime: the same kernels on the same values, so the same tensors, without paying for them
on every run.

Untrusted files: the file size is bounded, the protobuf is parsed by onnx, the slt-deploy
metadata is validated, external data (which could name any file on disk) is refused, the
model must match the sha256 the exporter stored (ONNX itself has no checksum, so a flipped
weight bit would otherwise run silently), and it must pass
``onnx.checker.check_model(full_check=True)`` before ONNX Runtime sees it (from bytes, so
no path is resolved). Any failure is one :class:`SltFormatError` line. A
well-formed but hostile graph can still be expensive to run, like any program.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SltError, SltFormatError, SltInputError
from ..ir.graph import Encoding, Ticket
from ..ratecode import LEGACY_RATE_CODE
from ..registry import ONNXRUNTIME
from ..result import OutputInfo, Result, build_result, check_input, encode_step, rate_coder

_NEEDS_ORT = "target 'onnxruntime' needs onnx and onnxruntime: pip install 'slt-deploy[onnx]'"
MAX_FILE_BYTES = 2**31 - 1
# Ops the constant folder may evaluate ahead of time (deterministic, no subgraphs).
_FOLDABLE = frozenset({
    "Add", "BitShift", "BitwiseAnd", "Cast", "Compress", "Concat", "ConstantOfShape", "CumSum", "Div", "Equal",
    "Gather", "Identity", "Max", "Min", "Mul", "Not", "Reshape", "ScatterElements", "Slice", "Sub", "Transpose",
    "Unsqueeze", "Where",
})


def _import_ort() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise SltError(_NEEDS_ORT) from None
    return onnx, onnxruntime


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# --------------------------------------------------------------------- public API
def run(ticket: Ticket, x: np.ndarray, record: bool = True, mode: str = "loop", weights: str = "auto",
        threads: int | None = None, optimization: str = "disable") -> Result:
    """Run ``ticket`` on ``x`` with ONNX Runtime; same contract as the reference simulator.

    ``record``: also return every node's per-step values in ``Result.layers`` (spike counts of
    the neuron layers are always returned). ``mode`` / ``weights``: the exporter's options.
    ``threads``: ONNX Runtime intra-op threads (default: its own choice). ``optimization``:
    ONNX Runtime's graph optimization level; only ``disable`` (the default) is exact, the
    others (``basic``, ``extended``, ``all``) exist to measure what they change.
    """
    return compile_ticket(ticket, record=record, mode=mode, weights=weights, threads=threads,
                          optimization=optimization).run(x)


def compile_ticket(ticket: Ticket, record: bool = False, mode: str = "loop", weights: str = "auto",
                   threads: int | None = None, optimization: str = "disable") -> OrtProgram:
    """Build the ONNX model of ``ticket`` and an ONNX Runtime session for repeated runs."""
    from ..exporters.onnx import build_model

    _import_ort()
    built = build_model(ticket, mode=mode, weights=weights, record="all" if record else "neurons", check=False)
    return OrtProgram(built.model, _Info.from_model(built.model), threads=threads, target=ONNXRUNTIME.name,
                      optimization=optimization)


def load_onnx_file(path: str | os.PathLike[str], threads: int | None = None,
                   optimization: str = "disable") -> OrtProgram:
    """Load an exported ``.onnx`` file as untrusted input; every bad file is one SltFormatError."""
    onnx, _ = _import_ort()
    where = os.fspath(path)
    from slt_deploy.untrusted import read_bounded

    data = read_bounded(where, MAX_FILE_BYTES, error=SltFormatError, what="an .onnx file (2 GiB protobuf limit)")
    if not data:
        raise SltFormatError(f"{where}: empty file, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise SltFormatError(f"{where}: not a valid ONNX protobuf ({_one_line(exc)})") from None
    if not model.HasField("graph") or model.ByteSize() == 0:
        raise SltFormatError(f"{where}: not an ONNX model (no graph); the file is truncated or of another kind")
    info = _Info.from_model(model, where)
    _refuse_external_data(model, where)
    from ..exporters.onnx import META, model_digest

    stored = [p.value for p in model.metadata_props if p.key == META["sha256"]]
    if stored != [model_digest(model)]:
        raise SltFormatError(f"{where}: checksum mismatch ({META['sha256']}): the file is corrupt "
                             "or was modified after export; export it again")
    from slt_deploy.untrusted.onnx_graph import check_onnx_graph

    check_onnx_graph(model, info.timesteps, where)  # the digest can be recomputed by anybody
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker raises ValidationError / InferenceError
        raise SltFormatError(f"{where}: ONNX checker rejects the model ({_one_line(exc)})") from None
    return OrtProgram(model, info, threads=threads, target=ONNXRUNTIME.name, where=where, optimization=optimization)


def run_onnx_file(path: str | os.PathLike[str], x: np.ndarray, record: bool = True,
                  threads: int | None = None) -> Result:
    """Run an exported ``.onnx`` file on ``x`` (shapes as for the ticket it came from); the run's
    memory is estimated first (``16 x T x batch x`` the recorded values per step, as
    :mod:`slt_deploy.untrusted.limits`) and refused above ``SLT_MAX_MEMORY`` / min(8 GiB, 3/4 RAM)."""
    program = load_onnx_file(path, threads=threads)
    _check_memory(program.info, x, record, os.fspath(path))
    return program.run(x, record=record)


def _check_memory(info: _Info, x: Any, record: bool, where: str) -> None:
    import math

    from ..untrusted.limits import MAX_MEMORY_ENV, default_limit, fmt_bytes

    shape = np.shape(x)
    lead = 1 if info.per_step_input else 0
    if len(shape) <= lead:
        return  # the input check names the problem
    per_step = math.prod(info.output_shape) + sum(math.prod(r[3]) for r in info.records)
    need = 16 * info.timesteps * int(shape[lead]) * per_step
    cap = default_limit()
    if need > cap:
        raise SltInputError(f"{where}: this run needs about {fmt_bytes(need)} (T={info.timesteps} x batch "
                            f"{int(shape[lead])} x {per_step:,} values per step), above the {fmt_bytes(cap)} limit; "
                            f"raise it with {MAX_MEMORY_ENV}, or run a smaller batch")


# --------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class _Info:
    """What a run needs to know from the model's metadata (a stand-in for the ticket's input side)."""

    timesteps: int
    encoding: Encoding
    input_shape: tuple[int, ...]
    input_node: str
    output_node: str
    output_spiking: bool
    output_shape: tuple[int, ...]
    records: tuple[tuple[str, str, str, tuple[int, ...]], ...]  # (ONNX output, node name, node kind, shape)

    @classmethod
    def from_model(cls, model: Any, where: str = "ONNX model") -> _Info:
        from ..exporters.onnx import FORMAT_TAG, META, OUTPUT_NAME

        props = {p.key: p.value for p in model.metadata_props}
        if props.get(META["format"]) != FORMAT_TAG:
            raise SltFormatError(f"{where}: not an slt-deploy ONNX model (metadata {META['format']!r} "
                                 f"is not {FORMAT_TAG!r}); export it with `slt export --to onnx`")
        try:
            timesteps = int(props[META["timesteps"]])
            kind = props[META["encoding"]]
            seed_text = props.get(META["seed"], "")
            seed = int(seed_text) if seed_text else None
            code = props.get(META["rate_code"]) or (LEGACY_RATE_CODE if kind == "rate" else None)  # unnamed: old file
            encoding = Encoding(kind, seed, code)
            shape = json.loads(props[META["input_shape"]])
            out_shape = json.loads(props[META["output_shape"]])
            records_raw = json.loads(props[META["records"]])
            input_node = props[META["input_node"]]
            output_node = props[META["output_node"]]
            spiking = {"1": True, "0": False}[props[META["output_spiking"]]]
        except RecursionError:
            raise SltFormatError(f"{where}: bad slt-deploy metadata (JSON nested too deeply)") from None
        except (KeyError, ValueError, TypeError, SltError) as exc:
            raise SltFormatError(f"{where}: bad slt-deploy metadata ({_one_line(exc)})") from None
        if not 1 <= timesteps <= 1_000_000:
            raise SltFormatError(f"{where}: bad slt-deploy metadata (timesteps {timesteps})")
        if not _is_shape(shape):
            raise SltFormatError(f"{where}: bad slt-deploy metadata (input shape {str(shape)[:80]})")
        if not _is_shape(out_shape):
            raise SltFormatError(f"{where}: bad slt-deploy metadata (output shape {str(out_shape)[:80]})")
        records = []
        if not isinstance(records_raw, list):
            raise SltFormatError(f"{where}: bad slt-deploy metadata (records is not a list)")
        for r in records_raw:
            if not (isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("output", "node", "kind"))
                    and _is_shape(r.get("shape"))):
                raise SltFormatError(f"{where}: bad slt-deploy metadata (record entry {str(r)[:80]})")
            records.append((r["output"], r["node"], r["kind"], tuple(r["shape"])))
        graph_outputs = {o.name for o in model.graph.output}
        wanted = {OUTPUT_NAME, *(r[0] for r in records)}
        if not wanted <= graph_outputs:
            missing = sorted(wanted - graph_outputs)[0]
            raise SltFormatError(f"{where}: the model has no output '{missing}' that its metadata names")
        inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        if inputs != ["input"]:
            raise SltFormatError(f"{where}: the model must have exactly one input named 'input', has {inputs[:4]}")
        return cls(timesteps, encoding, tuple(shape), input_node, output_node, spiking, tuple(out_shape),
                   tuple(records))

    @property
    def per_step_input(self) -> bool:
        return self.encoding.kind != "direct"


def _is_shape(shape: Any) -> bool:
    return (isinstance(shape, list) and 0 < len(shape) <= 8
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 2**31 for s in shape))


def _refuse_external_data(model: Any, where: str) -> None:
    """External tensor data names files on disk: never follow it from an untrusted model."""
    onnx = _import_ort()[0]
    ext = onnx.TensorProto.EXTERNAL

    def tensors_of(graph: Any) -> Any:
        yield from graph.initializer
        for sp in graph.sparse_initializer:
            yield sp.values
            yield sp.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices
                if attr.HasField("g"):
                    yield from tensors_of(attr.g)
                for sub in attr.graphs:
                    yield from tensors_of(sub)

    for tensor in tensors_of(model.graph):
        if tensor.data_location == ext or len(tensor.external_data):
            raise SltFormatError(f"{where}: tensor '{tensor.name[:60]}' refers to external data; "
                                 "only self-contained ONNX models are run")


# --------------------------------------------------------------------- session
class OrtProgram:
    """An ONNX Runtime session of an slt-deploy model (constants folded, optimizations off)."""

    def __init__(self, model: Any, info: _Info, threads: int | None = None, target: str = ONNXRUNTIME.name,
                 where: str = "ONNX model", optimization: str = "disable") -> None:
        _, ort = _import_ort()
        self.info = info
        self.target = target
        self.where = where
        self.options = ort.SessionOptions()
        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if optimization not in levels:
            raise SltInputError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
        self.options.graph_optimization_level = levels[optimization]
        self.options.log_severity_level = 4  # fatal only: a failure is one `slt: error:` line, not ORT's red log
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = 4
        if threads is not None:
            self.options.intra_op_num_threads = int(threads)
        try:
            self.model = fold_constants(model, self.options)  # what the session runs
            self.session = ort.InferenceSession(self.model.SerializeToString(), self.options,
                                                providers=["CPUExecutionProvider"])
        except SltError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises many pybind11 exception types
            raise SltFormatError(f"{where}: ONNX Runtime cannot load the model ({_one_line(exc)})") from None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The model input for ``x``: float32 (batch, *in) for direct input, else (T, batch, *in)."""
        x = check_input(self.info, x)  # type: ignore[arg-type]  # reads input_shape/encoding/timesteps
        if not self.info.per_step_input:
            return np.ascontiguousarray(encode_step(self.info, x, 0, None, np.float32))  # type: ignore[arg-type]
        coder = rate_coder(self.info, x)  # type: ignore[arg-type]
        steps = [encode_step(self.info, x, t, coder, np.float32) for t in range(self.info.timesteps)]  # type: ignore[arg-type]
        return np.ascontiguousarray(np.stack(steps))

    def run(self, x: np.ndarray, record: bool = True) -> Result:
        from ..exporters.onnx import OUTPUT_NAME

        info = self.info
        feed = self.encode(x)
        wanted = [OUTPUT_NAME] + ([r[0] for r in info.records])
        try:
            values = self.session.run(wanted, {"input": feed}, self.run_options)
        except Exception as exc:  # noqa: BLE001 - a malformed graph fails only when it runs
            raise SltFormatError(f"{self.where}: ONNX Runtime failed to run the model ({_one_line(exc)})") from None
        T = info.timesteps
        batch = feed.shape[1] if info.per_step_input else feed.shape[0]
        output = self._checked(values[0], (T, batch, *info.output_shape), "output")
        layers: dict[str, np.ndarray] = {}
        spike_counts: dict[str, np.ndarray] = {}
        for (name, node, kind, shape), arr in zip(info.records, values[1:], strict=True):
            arr = self._checked(arr, (T, batch, *shape), name)
            if kind in ("lif", "rlif"):  # spiking layers
                spike_counts[node] = arr.reshape(T, -1).sum(axis=1, dtype=np.int64)
            layers[node] = arr
        if record:
            layers[info.input_node] = np.broadcast_to(feed, (T, *feed.shape)).copy() \
                if not info.per_step_input else feed
        layers[info.output_node] = output
        lif_names = tuple(node for _, node, kind, _ in info.records if kind in ("lif", "rlif"))
        return build_result(OutputInfo(info.output_node, info.output_spiking, lif_names), self.target, layers,
                            record=record, spike_counts=spike_counts)

    def _checked(self, value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
        arr = np.asarray(value)
        if arr.shape != shape or arr.dtype != np.float32:
            raise SltFormatError(f"{self.where}: model output '{name[:60]}' is {arr.dtype} {arr.shape}, "
                                 f"expected float32 {shape}")
        return arr


# --------------------------------------------------------------------- constant folding
def fold_constants(model: Any, options: Any) -> Any:
    """Evaluate the nodes that depend only on initializers (weight decoders) once, with ORT itself.

    The results are stored as initializers of a new model; nodes with subgraphs, other
    domains and ops outside a small deterministic set are left alone.
    """
    onnx, ort = _import_ort()
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    const = {t.name for t in graph.initializer if t.name not in graph_inputs}
    folded_nodes, folded_out = [], set()
    for node in graph.node:
        ins = [i for i in node.input if i]
        if (node.domain in ("", "ai.onnx") and node.op_type in _FOLDABLE and not any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
                and all(i in const for i in ins)):
            folded_nodes.append(node)
            const.update(o for o in node.output if o)
            folded_out.update(o for o in node.output if o)
    if not folded_nodes:
        return model
    folded_ids = {id(n) for n in folded_nodes}
    rest = [n for n in graph.node if id(n) not in folded_ids]
    used = _names_used(rest, onnx) | {o.name for o in graph.output}
    needed = sorted(folded_out & used)
    if not needed:
        return model
    inits_used = _names_used(folded_nodes, onnx)
    sub = onnx.helper.make_graph(
        folded_nodes, "fold", [], [onnx.ValueInfoProto(name=n) for n in needed],
        initializer=[t for t in graph.initializer if t.name in inits_used],
    )
    sub_model = onnx.helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    session = ort.InferenceSession(sub_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    arrays = session.run(needed, {})
    new_inits = [t for t in graph.initializer if t.name in used or t.name in graph_inputs]
    new_inits += [onnx.numpy_helper.from_array(np.asarray(a), name) for name, a in zip(needed, arrays, strict=True)]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(rest)
    del out.graph.initializer[:]
    out.graph.initializer.extend(new_inits)
    return out


def _names_used(nodes: Any, onnx: Any) -> set[str]:
    """Every tensor name the nodes read, including names their subgraphs read from outer scope."""
    used: set[str] = set()
    for node in nodes:
        used.update(i for i in node.input if i)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                used |= _names_used(attr.g.node, onnx)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    used |= _names_used(sub.node, onnx)
    return used


__all__ = ["OrtProgram", "compile_ticket", "fold_constants", "load_onnx_file", "run", "run_onnx_file"]
