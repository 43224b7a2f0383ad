"""lava-dl netx HDF5: export a ticket so ``lava.lib.dl.netx.hdf5.Network`` runs it on Loihi.

Layout (what lava-dl's SLAYER writes and netx 0.6.0 reads)::

    layer/0/type      b"input"          layer/0/shape   (C, H, W) or (N,)
    layer/i/type      b"dense" | b"dense_rec" | b"conv" | b"flatten"
    layer/i/shape     neuron shape: (N,) for dense, (C, H, W) for conv
    layer/i/weight    integer weights: dense (N, M); conv (C_out, C_in/groups, kH, kW)
    layer/i/weight_rec            dense_rec: recurrent weights (N, N)
    layer/i/bias                  optional, bias_mant (netx applies bias_exp = 6)
    layer/i/stride, padding, dilation (H, W); groups; kernelSize; inChannels; outChannels   (conv)
    layer/i/inFeatures, outFeatures                                                       (dense)
    layer/i/neuron/{type=b"CUBA", iDecay, vDecay, vThMant, refDelay, gradedSpike}
    simulation/{Ts, tSample}

The numbers are exactly those of :func:`slt_deploy.fixed_point.to_fixed` -- the integers the
slt Lava target runs -- written the way netx maps them back: ``vth = vThMant``,
``du = iDecay − 1`` (iDecay = 4096: the current decays fully each step), ``dv = vDecay``,
``bias_mant = bias`` with ``bias_exp = 6``; netx re-derives ``weight_exp`` and the weight
bits from the integer weights, which round-trips them exactly (|w| <= 254, w = k·2^E).
So a network loaded with ``netx.hdf5.Network(net_config=path)`` gives Lava's fixed_pt
spikes of the slt Lava target, read at the same offset (one step per layer).

What netx cannot say is refused, or with ``allow_approximate=True`` written approximately
and listed in the report: other resets than zero (CUBA resets to zero), per-neuron decays
(one vDecay per layer), biases (netx applies them from the first Lava step, before a deep
layer's input arrives, so they act for extra steps), LI readouts, and graphs that are not
a chain of layers (residual joins). Also :func:`read_netx` / :func:`import_netx` read such a
file back (validated: every bad file is an :class:`SltFormatError` naming the field).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slt_deploy.atomic import atomic_write_bytes
from slt_deploy.errors import SltFormatError, SltImportError, SltUnsupportedError
from slt_deploy.fixed_point import DECAY_UNITY, DU_FULL, FixedNetwork, to_fixed
from slt_deploy.ir.graph import Edge, Encoding, Ticket
from slt_deploy.ir.neurons import LIF
from slt_deploy.ir.nodes import Add, Conv2d, Flatten, Input, Linear, Node, Output
from slt_deploy.ir.weights import FloatWeights

I_DECAY = DU_FULL + 1          # netx: du = iDecay − 1
REF_DELAY = 1
MAX_DATASET_BYTES = 1 << 30    # refuse datasets that would expand beyond this when read
FORMAT_TAG = "slt-deploy netx 1"
DIRECT_FRAC_BITS = 8           # direct (analog) input: graded spikes round(x · 2^8) unless told otherwise


def _need_h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise SltUnsupportedError("netx HDF5 needs h5py: pip install 'slt-deploy[nir]'") from None
    return h5py


# ====================================================================== export
def export_netx(ticket: Ticket, path: str | os.PathLike[str], allow_approximate: bool = False,
                input_frac_bits: int | None = None) -> dict[str, Any]:
    """Write ``ticket`` as a lava-dl netx HDF5 file; return the report (see the module docstring).

    ``input_frac_bits``: for direct (analog) input, the network expects graded spikes
    ``round(x · 2^s)`` (default s = 8; load it with ``input_message_bits=24``).
    """
    h5py = _need_h5py()
    if input_frac_bits is None and ticket.encoding.kind == "direct":
        input_frac_bits = DIRECT_FRAC_BITS
    fixed = to_fixed(ticket, input_frac_bits=input_frac_bits)
    layers, notes, warnings = _netx_layers(fixed, allow_approximate)
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.attrs["slt_deploy"] = FORMAT_TAG
        f.attrs["timesteps"] = ticket.timesteps
        f.attrs["input_encoding"] = ticket.encoding.kind
        f.attrs["input_frac_bits"] = fixed.input_frac_bits
        group = f.create_group("layer")
        _write_layer(group.create_group("0"), {"type": "input", "shape": np.array(fixed.plan.input_shape)})
        for i, spec in enumerate(layers, start=1):
            _write_layer(group.create_group(str(i)), spec)
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=1)
        sim.create_dataset("tSample", data=ticket.timesteps)
    atomic_write_bytes(path, bio.getvalue())
    graded = ticket.encoding.kind == "direct"
    blocks = [spec for spec in layers if spec["type"] != "flatten"]
    exact = fixed.report["spikes_equal_reference"]
    return {
        "format": "netx",
        "layers": len(blocks),
        "types": [spec["type"] for spec in layers],
        "delay_steps": len(blocks),
        "input_message_bits": 24 if graded else 0,
        "input_frac_bits": fixed.input_frac_bits,
        "load": ("lava.lib.dl.netx.hdf5.Network(net_config=PATH"
                 + (", input_message_bits=24)" if graded else ")")
                 + "; feed " + (f"round(x·2^{fixed.input_frac_bits}) as graded spikes" if graded else "spikes")
                 + (" in (W, H, C) order" if blocks and blocks[0]["type"] == "conv" else " flattened in C order")
                 + f"; the output of ticket step t is {len(blocks)} steps late (sink buffer index t + "
                 + f"{len(blocks)})"),
        "same_as_lava_target": not notes,
        "lava_target_options": {"input_frac_bits": fixed.input_frac_bits} if graded else {},
        "spikes_equal_reference": False if notes else exact,
        "approximations": notes,
        "warnings": warnings,
        "conversion": fixed.report,
    }


def _netx_layers(fixed: FixedNetwork,
                 allow_approximate: bool) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The layer dicts to write, the approximations taken (only with ``allow_approximate``), warnings."""
    notes: list[str] = []
    warnings: list[str] = []

    def approx(msg: str) -> None:
        if not allow_approximate:
            raise SltUnsupportedError(f"netx: {msg}; pass allow_approximate=True to export it approximately")
        notes.append(msg)

    specs: list[dict[str, Any]] = []
    prev_name = fixed.plan.input_name
    prev_kind = "conv" if len(fixed.plan.input_shape) == 3 else "dense"
    prev_written = "input"
    for layer in fixed.layers:
        ff = [s for s in layer.synapses if s.lag == 0]
        rec = [s for s in layer.synapses if s.lag == 1]
        if (len(ff) != 1 or ff[0].src != prev_name or any(s.delay for s in layer.synapses)
                or len(rec) > 1 or any(s.src != layer.name for s in rec)):
            raise SltUnsupportedError(
                f"netx: node '{layer.name}' is not fed by the layer before it alone; netx describes a chain of "
                "layers (each with at most a recurrence onto itself)"
            )
        if layer.kind == "li":
            raise SltUnsupportedError(f"netx: node '{layer.name}' is an LI readout; netx's CUBA layers spike")
        if layer.reset != "zero":
            approx(f"node '{layer.name}' uses the {layer.reset!r} reset; netx's CUBA neuron resets to zero")
        if not layer.uniform_dv:
            approx(f"node '{layer.name}' has per-neuron decays; netx stores one vDecay per layer (the median is used)")
        if np.any(layer.bias_mant):
            approx(f"node '{layer.name}' has a bias; netx applies it from the first Lava step, before the input "
                   f"reaches layer {layer.depth}, so it acts {layer.depth} step(s) early")
        syn = ff[0]
        if not np.any(syn.W.vals) and not rec:
            raise SltUnsupportedError(f"netx: node '{layer.name}' has no nonzero weight; netx's loader cannot "
                                      "scale an all-zero weight matrix")
        dv = int(np.median(layer.dv)) if not layer.uniform_dv else int(layer.dv.flat[0])
        neuron = {"type": "CUBA", "iDecay": I_DECAY, "vDecay": dv, "vThMant": int(layer.vth),
                  "refDelay": REF_DELAY, "gradedSpike": False}
        spec: dict[str, Any] = {"neuron": neuron, "_layer": layer}
        as_conv = syn.conv is not None and not rec and prev_kind == "conv"
        if as_conv:
            conv = syn.conv
            spec.update(type="conv", shape=np.array(conv.out_shape), weight=conv.kernel.astype(np.float32),
                        stride=np.array(conv.stride), padding=np.array(conv.padding),
                        dilation=np.array(conv.dilation), groups=conv.groups,
                        kernelSize=np.array(conv.kernel.shape[2:]),
                        inChannels=conv.in_shape[0], outChannels=conv.out_shape[0])
            if np.any(layer.bias_mant):
                per_channel = layer.bias_mant.reshape(conv.out_shape[0], -1)
                if np.all(per_channel == per_channel[:, :1]):
                    spec["bias"] = per_channel[:, 0].astype(np.float32)
                else:
                    spec["bias"] = layer.bias_mant.reshape(conv.out_shape).astype(np.float32)
        else:
            if prev_written == "conv":
                specs.append({"type": "flatten", "shape": np.array([int(np.prod(fixed.ticket.shapes[prev_name]))])})
            spec.update(type="dense_rec" if rec else "dense", shape=np.array([layer.size]),
                        weight=syn.W.todense(np.int64).astype(np.float32), inFeatures=syn.W.shape[1],
                        outFeatures=layer.size)
            if rec:
                spec["weight_rec"] = rec[0].W.todense(np.int64).astype(np.float32)
            if np.any(layer.bias_mant):
                spec["bias"] = layer.bias_mant.astype(np.float32)
        if np.all(syn.W.vals <= 0) and np.any(syn.W.vals < 0) and not rec:
            warnings.append(f"node '{layer.name}': all weights are inhibitory; netx scales such a layer to -256, "
                            "which Lava's Dense clips to -255 (exact while fewer than 128 inputs of a neuron spike "
                            "together)")
        specs.append(spec)
        prev_name, prev_written = layer.name, spec["type"]
        prev_kind = "conv" if as_conv else "dense"
    return specs, notes, warnings


def _write_layer(group: Any, spec: dict[str, Any]) -> None:
    group.create_dataset("type", (1,), "S10", [spec["type"].encode("ascii")])
    for key, value in spec.items():
        if key in ("type", "neuron") or key.startswith("_"):
            continue
        group.create_dataset(key, data=value)
    if "neuron" in spec:
        for key, value in spec["neuron"].items():
            if key == "type":
                group.create_dataset("neuron/type", (1,), "S10", [value.encode("ascii")])
            else:
                group.create_dataset(f"neuron/{key}", data=value)


# ====================================================================== read back
@dataclass
class NetxLayer:
    """One validated netx layer."""

    index: int
    type: str
    shape: tuple[int, ...]
    weight: np.ndarray | None = None
    weight_rec: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    neuron: dict[str, Any] = field(default_factory=dict)


@dataclass
class NetxNetwork:
    """A validated netx file: the input shape, the layers, and T if the file states it."""

    input_shape: tuple[int, ...]
    layers: list[NetxLayer]
    timesteps: int | None
    attrs: dict[str, Any]


def read_netx(path: str | os.PathLike[str]) -> NetxNetwork:
    """Read and validate a netx HDF5 file (dense, dense_rec, conv, flatten layers; CUBA neurons)."""
    h5py = _need_h5py()
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        f = h5py.File(name, "r")
    except FileNotFoundError:
        raise SltFormatError(f"netx file '{name}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise SltFormatError(f"netx file '{name}' is not a readable HDF5 file (truncated or corrupt: {exc})") from None
    try:
        with f:
            return _read(f, name, size, h5py)
    except SltFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise SltFormatError(f"netx file '{name}' cannot be read: {exc}") from None


def _read(f: Any, name: str, size: int, h5py: Any) -> NetxNetwork:
    reader = _Reader(f, name, size, h5py)
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise SltFormatError(f"netx file '{name}': missing group 'layer'")
    keys = list(f["layer"].keys())
    if not keys or sorted(keys, key=lambda k: int(k) if k.isdigit() else -1) != [str(i) for i in range(len(keys))]:
        raise SltFormatError(f"netx file '{name}': 'layer' must hold groups 0..n-1, found {sorted(keys)[:8]}")
    first = "layer/0"
    if reader.string(f"{first}/type") != "input":
        raise SltFormatError(f"netx file '{name}': {first}/type must be 'input' (slt writes the input layer)")
    input_shape = reader.shape(f"{first}/shape")
    layers = []
    current = input_shape
    flat_next = False
    for i in range(1, len(keys)):
        base = f"layer/{i}"
        kind = reader.string(f"{base}/type")
        if kind == "flatten":
            flat_next = True
            layers.append(NetxLayer(i, kind, (int(np.prod(current)),)))
            current = (int(np.prod(current)),)
            continue
        if kind not in ("dense", "dense_rec", "conv"):
            raise SltFormatError(f"netx file '{name}': {base}/type {kind!r} is not supported (dense, dense_rec, conv, "
                                 "flatten)")
        shape = reader.shape(f"{base}/shape")
        layer = NetxLayer(i, kind, shape, neuron=reader.neuron(f"{base}/neuron"))
        if kind == "conv":
            if len(shape) != 3 or len(current) != 3:
                raise SltFormatError(f"netx file '{name}': {base}/shape must be (C, H, W) after a (C, H, W) layer, "
                                     f"got {shape} after {current}")
            w = reader.integers(f"{base}/weight", ndim=4)
            layer.stride = reader.pair(f"{base}/stride", 1)
            layer.padding = reader.pair(f"{base}/padding", 0)
            layer.dilation = reader.pair(f"{base}/dilation", 1)
            layer.groups = reader.scalar_int(f"{base}/groups", 1)
            if w.shape[0] != shape[0] or current[0] % layer.groups or w.shape[0] % layer.groups \
                    or w.shape[1] * layer.groups != current[0]:
                raise SltFormatError(f"netx file '{name}': {base}/weight has shape {w.shape}, which does not map "
                                     f"{current} to {shape} with groups={layer.groups}")
            try:
                out = Conv2d("c", FloatWeights(w != 0, w.astype(np.float32)), stride=layer.stride,
                             padding=layer.padding, dilation=layer.dilation, groups=layer.groups).out_shape([current])
            except Exception as exc:  # noqa: BLE001 - a validation error of the geometry
                raise SltFormatError(f"netx file '{name}': {base} geometry is invalid: {exc}") from None
            if tuple(out) != shape:
                raise SltFormatError(f"netx file '{name}': {base}/shape is {shape}, but the convolution of {current} "
                                     f"gives {tuple(out)}")
            layer.weight = w
        else:
            n = int(np.prod(shape))
            m = int(np.prod(current))
            w = reader.integers(f"{base}/weight")
            if w.ndim == 1 and w.size == n * m:
                w = w.reshape(n, m)
            if w.shape != (n, m):
                raise SltFormatError(f"netx file '{name}': {base}/weight has shape {w.shape}, expected ({n}, {m})")
            layer.weight = w
            if kind == "dense_rec":
                wr = reader.integers(f"{base}/weight_rec")
                if wr.shape != (n, n):
                    raise SltFormatError(f"netx file '{name}': {base}/weight_rec has shape {wr.shape}, "
                                         f"expected ({n}, {n})")
                layer.weight_rec = wr
            if len(current) == 3 and not flat_next and layers and layers[-1].type == "conv":
                raise SltFormatError(f"netx file '{name}': {base} is dense after a conv layer without a flatten layer")
        if f"{base}/bias" in reader.f:
            b = reader.integers(f"{base}/bias")
            channels = shape[0] if kind == "conv" else None
            if b.size != int(np.prod(shape)) and not (channels is not None and b.size == channels):
                raise SltFormatError(f"netx file '{name}': {base}/bias has {b.size} values for a layer of shape "
                                     f"{shape}")
            layer.bias = b
        layers.append(layer)
        current = shape
        flat_next = False
    timesteps = None
    if "simulation/tSample" in f:
        timesteps = reader.scalar_int("simulation/tSample", None)
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    if "timesteps" in attrs:
        timesteps = int(attrs["timesteps"])
    return NetxNetwork(input_shape, layers, timesteps, attrs)


class _Reader:
    def __init__(self, f: Any, name: str, size: int, h5py: Any) -> None:
        self.f, self.name, self.size, self.h5py = f, name, size, h5py

    def _dataset(self, key: str) -> Any:
        if key not in self.f:
            raise SltFormatError(f"netx file '{self.name}': missing field '{key}'")
        ds = self.f[key]
        if not isinstance(ds, self.h5py.Dataset):
            raise SltFormatError(f"netx file '{self.name}': '{key}' must be a dataset")
        nbytes = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize if ds.shape is not None else 0
        if nbytes > MAX_DATASET_BYTES or (ds.compression is None and nbytes > self.size):
            raise SltFormatError(f"netx file '{self.name}': '{key}' claims {nbytes} bytes, more than the file holds")
        return ds

    def value(self, key: str) -> np.ndarray:
        try:
            return np.asarray(self._dataset(key)[()])
        except SltFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on damaged data
            raise SltFormatError(f"netx file '{self.name}': '{key}' cannot be read ({exc})") from None

    def string(self, key: str) -> str:
        v = self.value(key)
        if v.shape:
            if v.size != 1:
                raise SltFormatError(f"netx file '{self.name}': '{key}' must hold one string")
            v = v.reshape(-1)[0]
        v = v.item() if hasattr(v, "item") else v
        if isinstance(v, bytes):
            try:
                return v.decode("ascii")
            except UnicodeDecodeError:
                raise SltFormatError(f"netx file '{self.name}': '{key}' is not an ASCII string") from None
        if isinstance(v, str):
            return v
        raise SltFormatError(f"netx file '{self.name}': '{key}' must be a string, got {type(v).__name__}")

    def numbers(self, key: str) -> np.ndarray:
        v = self.value(key)
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool) or np.iscomplexobj(v):
            raise SltFormatError(f"netx file '{self.name}': '{key}' must be numeric, got dtype {v.dtype}")
        v = v.astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise SltFormatError(f"netx file '{self.name}': '{key}' contains NaN or inf")
        return v

    def integers(self, key: str, ndim: int | None = None) -> np.ndarray:
        v = self.numbers(key)
        if np.any(v != np.round(v)):
            raise SltFormatError(f"netx file '{self.name}': '{key}' must hold integers (Loihi weights and biases)")
        if np.any(np.abs(v) > 2**31 - 1):
            raise SltFormatError(f"netx file '{self.name}': '{key}' holds values beyond 32 bits")
        if ndim is not None and v.ndim != ndim:
            if ndim == 4 and v.ndim == 5 and v.shape[-1] == 1:
                v = v[..., 0]  # SLAYER keeps a trailing time axis of 1 on conv kernels
            else:
                raise SltFormatError(f"netx file '{self.name}': '{key}' must be {ndim}-D, got shape {v.shape}")
        return v

    def scalar_int(self, key: str, default: int | None) -> int:
        if key not in self.f and default is not None:
            return default
        v = self.integers(key).reshape(-1)
        if v.size != 1:
            raise SltFormatError(f"netx file '{self.name}': '{key}' must be one integer, got {v.size} values")
        return int(v[0])

    def shape(self, key: str) -> tuple[int, ...]:
        v = self.integers(key).reshape(-1)
        if not 1 <= v.size <= 3 or np.any(v < 1) or np.prod(v) > 1 << 28:
            raise SltFormatError(f"netx file '{self.name}': '{key}' must be 1 to 3 positive sizes, got {v.tolist()}")
        return tuple(int(s) for s in v)

    def pair(self, key: str, default: int) -> tuple[int, int]:
        if key not in self.f:
            return (default, default)
        v = self.integers(key).reshape(-1)
        if v.size == 1:
            v = np.repeat(v, 2)
        if v.size != 2 or np.any(v < (1 if default == 1 else 0)):
            raise SltFormatError(f"netx file '{self.name}': '{key}' must be one or two non-negative integers")
        return (int(v[0]), int(v[1]))

    def neuron(self, base: str) -> dict[str, Any]:
        if base not in self.f:
            raise SltFormatError(f"netx file '{self.name}': missing group '{base}'")
        kind = self.string(f"{base}/type")
        if kind not in ("CUBA", "LOIHI"):
            raise SltFormatError(f"netx file '{self.name}': {base}/type {kind!r} is not supported (CUBA)")
        out: dict[str, Any] = {"type": kind}
        for key, lo, hi in (("iDecay", 0, DECAY_UNITY), ("vDecay", 0, DECAY_UNITY), ("vThMant", 0, (1 << 24) - 1)):
            v = self.scalar_int(f"{base}/{key}", None)
            if not lo <= v <= hi:
                raise SltFormatError(f"netx file '{self.name}': {base}/{key} = {v} is outside [{lo}, {hi}]")
            out[key] = v
        return out


def import_netx(path: str | os.PathLike[str], timesteps: int | None = None, encoding: str = "spikes") -> Ticket:
    """A ticket computing exactly what the netx file's CUBA layers compute (in weight units).

    Each layer becomes Linear/Conv2d with the integer weights (float32, exact) and an LIF
    with ``β = (4096 − vDecay)/4096``, threshold ``vThMant`` and bias ``bias`` -- Loihi's
    membrane divided by 64. CUBA layers whose current persists (iDecay < 4096) have no IR
    equivalent and are refused.
    """
    net = read_netx(path)
    T = timesteps if timesteps is not None else net.timesteps
    if T is None:
        raise SltImportError(f"netx file '{os.fspath(path)}' does not state the time steps; pass timesteps=")
    nodes: list[Node] = [Input("input", shape=net.input_shape)]
    edges: list[Edge] = []
    prev = "input"
    for layer in net.layers:
        tag = f"layer{layer.index}"
        if layer.type == "flatten":
            nodes.append(Flatten(tag))
            edges.append(Edge(prev, tag))
            prev = tag
            continue
        if layer.neuron["iDecay"] != DECAY_UNITY:
            raise SltImportError(f"netx layer {layer.index}: iDecay = {layer.neuron['iDecay']} keeps synaptic current "
                                 "across steps; the ticket IR has no current state (only iDecay = 4096 imports)")
        w = layer.weight.astype(np.float32)
        if layer.type == "conv":
            syn: Node = Conv2d(f"{tag}.syn", FloatWeights(w != 0, w), stride=layer.stride, padding=layer.padding,
                               dilation=layer.dilation, groups=layer.groups)
        else:
            in_shape = nodes[-1].shape if isinstance(nodes[-1], (Input,)) else None
            if in_shape is not None and len(in_shape) > 1:
                nodes.append(Flatten(f"{tag}.flat"))
                edges.append(Edge(prev, f"{tag}.flat"))
                prev = f"{tag}.flat"
            syn = Linear(f"{tag}.syn", FloatWeights(w != 0, w))
        bias = None
        if layer.bias is not None:
            bias = (np.broadcast_to(layer.bias.reshape(-1, 1, 1), layer.shape) if layer.type == "conv"
                    and layer.bias.size == layer.shape[0] else layer.bias.reshape(layer.shape)).astype(np.float32)
        neuron = LIF(tag, shape=layer.shape, beta=np.float32((DECAY_UNITY - layer.neuron["vDecay"]) / DECAY_UNITY),
                     threshold=float(layer.neuron["vThMant"]), bias=bias)
        nodes.append(syn)
        edges.append(Edge(prev, syn.name))
        if layer.type == "dense_rec":
            wr = layer.weight_rec.astype(np.float32)
            rec = Linear(f"{tag}.rec", FloatWeights(wr != 0, wr))
            add = Add(f"{tag}.add")
            nodes += [rec, add]
            edges += [Edge(syn.name, add.name), Edge(rec.name, add.name), Edge(add.name, tag),
                      Edge(tag, rec.name, recurrent=True)]
        else:
            edges.append(Edge(syn.name, tag))
        nodes.append(neuron)
        prev = tag
    if prev == "input":
        raise SltFormatError(f"netx file '{os.fspath(path)}' has no neuron layer")
    nodes.append(Output("output"))
    edges.append(Edge(prev, "output"))
    return Ticket(tuple(nodes), tuple(edges), int(T), Encoding(encoding), {"source": "netx"})


__all__ = ["NetxLayer", "NetxNetwork", "export_netx", "import_netx", "read_netx"]
