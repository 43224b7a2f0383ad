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

import os
import stat
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slt_deploy.errors import SltFormatError, SltImportError, SltWarning
from slt_deploy.fixed_point import LOIHI2
from slt_deploy.ir.graph import MAX_TIMESTEPS, Edge, Ticket, encoding_of
from slt_deploy.ir.neurons import LIF
from slt_deploy.ir.nodes import Add, Conv2d, Flatten, Input, Linear, Node, Output
from slt_deploy.ir.weights import FloatWeights
from slt_deploy.untrusted.hdf5 import budget_for, in_child, scan_tree, tree_digest

# the writing side lives in ._netx_export (this module reads); export_netx and HANDLERS are public here too
from ._netx_export import DIGEST_ATTR, FORMAT_TAG, HANDLERS, export_netx
from ._netx_export import need_h5py as _need_h5py

DECAY_UNITY = LOIHI2.decay_unity   # netx's iDecay / vDecay unit (Loihi's 12-bit decays)
MAX_DATASET_BYTES = 1 << 30    # refuse datasets that would expand beyond this when read
WEIGHT_LIMIT = 256             # netx weights: 8-bit signed mantissas, [-256, 255]


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
    digest: str = "foreign"  # "ok", "foreign" (not slt's), "legacy" (slt's, no digest), "mismatch"


def read_netx(path: str | os.PathLike[str]) -> NetxNetwork:
    """Read and validate a netx HDF5 file (dense, dense_rec, conv, flatten layers; CUBA neurons).

    Untrusted: the HDF5 tree is checked first (no links, external storage or virtual datasets,
    declared sizes bounded: :func:`slt_deploy.untrusted.hdf5.scan_tree`) and all h5py work runs in a
    child process with a time limit (``SLT_HDF5_TIMEOUT``)."""
    _need_h5py()
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise SltFormatError(f"netx file '{name}' does not exist") from None
    except OSError as exc:
        raise SltFormatError(f"netx file '{name}' cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SltFormatError(f"netx file '{name}' is not a regular file (a directory, FIFO or device)")
    net = in_child(_read_file, name, where=f"netx file '{name}'")
    if net.digest == "mismatch":
        raise SltFormatError(f"netx file '{name}' does not match its slt digest ({DIGEST_ATTR}): it was edited after "
                             "export; export it again")
    if net.digest == "legacy":
        warnings.warn(f"netx file '{name}' was written by an slt-deploy without a digest ({DIGEST_ATTR}); edits cannot "
                      "be detected: export it again", SltWarning, stacklevel=2)
    return net


def _read_file(name: str) -> NetxNetwork:
    h5py = _need_h5py()
    try:
        size = os.path.getsize(name)
        f = h5py.File(name, "r")
    except FileNotFoundError:
        raise SltFormatError(f"netx file '{name}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise SltFormatError(f"netx file '{name}' is not a readable HDF5 file (truncated or corrupt: {exc})") from None
    try:
        with f:
            scan_tree(f, f"netx file '{name}'", budget_for(size))
            net = _read(f, name, size, h5py)
            net.digest = _digest_verdict(f)
            return net
    except SltFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged files make h5py raise anything
        raise SltFormatError(f"netx file '{name}' cannot be read: {type(exc).__name__}: {exc}") from None


def _digest_verdict(f: Any) -> str:
    if f.attrs.get("slt_deploy") not in (FORMAT_TAG, FORMAT_TAG.encode()):
        return "foreign"
    if DIGEST_ATTR not in f.attrs:
        return "legacy"
    stored = f.attrs[DIGEST_ATTR]
    stored = stored.decode("ascii", "replace") if isinstance(stored, bytes) else str(stored)
    return "ok" if stored == tree_digest(f, skip=frozenset({f"@{DIGEST_ATTR}"})) else "mismatch"


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
    layers: list[NetxLayer] = []
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
            _read_conv(reader, base, layer, current)
        else:
            _read_dense(reader, base, layer, current)
            if len(current) == 3 and not flat_next and layers and layers[-1].type == "conv":
                raise SltFormatError(f"netx file '{name}': {base} is dense after a conv layer without a flatten layer")
        _read_bias(reader, base, layer)
        layers.append(layer)
        current = shape
        flat_next = False
    timesteps = None
    if "simulation/tSample" in f:
        timesteps = reader.scalar_int("simulation/tSample", None)
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    if "timesteps" in attrs:
        timesteps = attrs["timesteps"]
        if isinstance(timesteps, np.ndarray) and timesteps.shape in ((), (1,)):
            timesteps = timesteps.reshape(()).item()
        if not isinstance(timesteps, (int, np.integer)) or isinstance(timesteps, (bool, np.bool_)):
            raise SltFormatError(f"netx file '{name}': attribute 'timesteps' must be an integer, got "
                                 f"{str(timesteps)[:40]} ({type(timesteps).__name__})")
    if timesteps is not None and not 1 <= int(timesteps) <= MAX_TIMESTEPS:
        raise SltFormatError(f"netx file '{name}': timesteps {timesteps} is outside [1, {MAX_TIMESTEPS}]")
    return NetxNetwork(input_shape, layers, None if timesteps is None else int(timesteps), attrs)


def _read_conv(reader: _Reader, base: str, layer: NetxLayer, current: tuple[int, ...]) -> None:
    """A conv layer's weight (O, I/groups, kH, kW) and geometry, checked to map ``current`` to its shape."""
    name, shape = reader.name, layer.shape
    if len(shape) != 3 or len(current) != 3:
        raise SltFormatError(f"netx file '{name}': {base}/shape must be (C, H, W) after a (C, H, W) layer, "
                             f"got {shape} after {current}")
    w = reader.weights(f"{base}/weight", ndim=4)
    layer.stride = reader.pair(f"{base}/stride", 1)
    layer.padding = reader.pair(f"{base}/padding", 0)
    layer.dilation = reader.pair(f"{base}/dilation", 1)
    layer.groups = reader.scalar_int(f"{base}/groups", 1)
    if layer.groups < 1:
        raise SltFormatError(f"netx file '{name}': {base}/groups = {layer.groups}, must be at least 1")
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


def _read_dense(reader: _Reader, base: str, layer: NetxLayer, current: tuple[int, ...]) -> None:
    """A dense layer's weight (n, m) and, for ``dense_rec``, its recurrent weight (n, n)."""
    name = reader.name
    n = int(np.prod(layer.shape))
    m = int(np.prod(current))
    w = reader.weights(f"{base}/weight")
    if w.ndim == 1 and w.size == n * m:
        w = w.reshape(n, m)
    if w.shape != (n, m):
        raise SltFormatError(f"netx file '{name}': {base}/weight has shape {w.shape}, expected ({n}, {m})")
    layer.weight = w
    if layer.type == "dense_rec":
        wr = reader.weights(f"{base}/weight_rec")
        if wr.shape != (n, n):
            raise SltFormatError(f"netx file '{name}': {base}/weight_rec has shape {wr.shape}, expected ({n}, {n})")
        layer.weight_rec = wr


def _read_bias(reader: _Reader, base: str, layer: NetxLayer) -> None:
    """The optional bias: one per neuron, or one per channel of a conv layer."""
    if f"{base}/bias" not in reader.f:
        return
    b = reader.integers(f"{base}/bias")
    channels = layer.shape[0] if layer.type == "conv" else None
    if b.size != int(np.prod(layer.shape)) and not (channels is not None and b.size == channels):
        raise SltFormatError(f"netx file '{reader.name}': {base}/bias has {b.size} values for a layer of shape "
                             f"{layer.shape}")
    layer.bias = b


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

    def weights(self, key: str, ndim: int | None = None) -> np.ndarray:
        """Integer weights within netx's 8-bit signed mantissa range [-256, 255] (slt writes |w| <= 254)."""
        v = self.integers(key, ndim)
        if v.size and (v.min() < -WEIGHT_LIMIT or v.max() > WEIGHT_LIMIT - 1):
            raise SltFormatError(f"netx file '{self.name}': '{key}' holds weights outside [-{WEIGHT_LIMIT}, "
                                 f"{WEIGHT_LIMIT - 1}] (netx's 8-bit weights; slt's exporter writes |w| <= 254)")
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


def import_netx(path: str | os.PathLike[str], timesteps: int | None = None, encoding: str = "spikes",
                seed: int | None = None) -> Ticket:
    """A ticket computing exactly what the netx file's CUBA layers compute (in weight units).

    Each layer becomes Linear/Conv2d with the integer weights (float32, exact) and an LIF
    with ``β = (4096 − vDecay)/4096``, threshold ``vThMant`` and bias ``bias`` -- Loihi's
    membrane divided by 64. CUBA layers whose current persists (iDecay < 4096) have no IR
    equivalent and are refused. ``encoding``: spikes (default), direct, or rate with ``seed``
    (default 0; slt_deploy.ratecode).
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
    return Ticket(tuple(nodes), tuple(edges), int(T), encoding_of(encoding, seed), {"source": "netx"})


__all__ = ["HANDLERS", "NetxLayer", "NetxNetwork", "export_netx", "import_netx", "read_netx"]
