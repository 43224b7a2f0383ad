"""lava-dl netx HDF5, the writing side: a ticket's Loihi integers as the layers netx 0.6.0 loads.

The layout and what netx cannot say are described in :mod:`slt_deploy.exporters.netx` (which
re-exports :func:`export_netx` and :data:`HANDLERS` and holds the reader). The numbers are
exactly those of :func:`slt_deploy.fixed_point.to_fixed` for :data:`~slt_deploy.fixed_point.LOIHI2`
-- the integers the slt Lava target runs -- written the way netx maps them back: ``vth =
vThMant``, ``du = iDecay − 1``, ``dv = vDecay``, ``bias_mant = bias`` with ``bias_exp = 6``.

Biases. Every ``Dense``/``Conv`` sends the previous step's accumulation, so the layer at depth
d first sees the input at Lava step ``1 + d``, while netx applies ``bias_mant`` from step 1: on
its own the bias would integrate for d extra steps. netx states the exact form with its
loader's periodic reset: ``netx.hdf5.Network(..., reset_interval=T, reset_offset=1)`` builds
``LIFReset`` neurons and resets the layer at depth d (netx counts ``reset_offset + d``) to
``u = v = 0`` at the start of step ``1 + d + k·T`` -- its first real step -- so whatever the bias
did before is wiped, and each T steps the next sample starts clean. A spike a layer fires on
its bias alone before that step reaches the next layer before *its* reset, so only a recurrent
layer (whose own early spike would arrive after the reset) is refused when a bias at or before
it can make it fire early. The report lists these loader options under ``lava_dl_options``.

Node kinds: :data:`HANDLERS` is the fixed-point plan's table (:data:`slt_deploy.fixed_point.plan.HANDLERS`)
with netx's own refusals. Configurations netx cannot express are refused per layer, naming
the node (graphs that are not a chain of layers, all-zero layers, a conv bias that varies
within a channel), or with ``--allow-approximate`` written approximately and listed in the
report (resets other than zero, per-neuron decays).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from slt_deploy.atomic import atomic_write_bytes
from slt_deploy.dispatch import HandlerTable, refuse
from slt_deploy.errors import SltUnsupportedError
from slt_deploy.fixed_point import LOIHI2, ConvSpec, FixedLayer, FixedNetwork, FixedSynapse, to_fixed
from slt_deploy.fixed_point.plan import HANDLERS as PLAN_HANDLERS
from slt_deploy.ir.graph import Ticket
from slt_deploy.ir.neurons import LI
from slt_deploy.untrusted.hdf5 import tree_digest

CHIP = LOIHI2                   # netx describes Loihi (2) CUBA neurons
I_DECAY = CHIP.du_full + 1      # netx: du = iDecay − 1
REF_DELAY = 1
RESET_OFFSET = 1                # netx resets its i-th layer at steps ≡ reset_offset + i (mod reset_interval)
FORMAT_TAG = "slt-deploy netx 1"
DIGEST_ATTR = "slt_digest"  # sha256 of the whole file but this attribute (slt_deploy.untrusted.hdf5.tree_digest)
DIRECT_FRAC_BITS = 8            # direct (analog) input: graded spikes round(x · 2^8) unless told otherwise

HANDLERS: HandlerTable[Any] = HandlerTable("netx export (lava-dl)", {
    **dict(PLAN_HANDLERS),
    LI.kind: refuse("netx's CUBA layers spike, so an LI readout has no netx form; end the ticket with a LIF layer, "
               "or export it to NIR or C"),
})
"""The plan's node kinds (each layer becomes a netx dense/conv block), minus what netx cannot hold."""


def need_h5py() -> Any:
    """h5py, or a one-line error saying how to install it."""
    try:
        import h5py
    except ImportError:
        raise SltUnsupportedError("netx HDF5 needs h5py: pip install 'slt-deploy[nir]'") from None
    return h5py


def export_netx(ticket: Ticket, path: str | os.PathLike[str], allow_approximate: bool = False,
                input_frac_bits: int | None = None) -> dict[str, Any]:
    """Write ``ticket`` as a lava-dl netx HDF5 file; return the report (see the module docstring).

    ``input_frac_bits``: for direct (analog) input, the network expects graded spikes
    ``round(x · 2^s)`` (default s = 8; load it with ``input_message_bits=24``).
    """
    h5py = need_h5py()
    HANDLERS.check(ticket.nodes)
    if input_frac_bits is None and ticket.encoding.kind == "direct":
        input_frac_bits = DIRECT_FRAC_BITS
    fixed = to_fixed(ticket, input_frac_bits=input_frac_bits, chip=CHIP)
    layers, notes, warnings = _netx_layers(fixed, allow_approximate)
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.attrs["slt_deploy"] = FORMAT_TAG
        f.attrs["timesteps"] = ticket.timesteps
        f.attrs["input_encoding"] = ticket.encoding.kind
        if ticket.encoding.kind == "rate":  # what the caller must feed: slt_deploy.ratecode.spikes(encoding, x, T)
            f.attrs["input_rate_code"] = ticket.encoding.code
            f.attrs["input_rate_seed"] = str(ticket.encoding.seed)
        f.attrs["input_frac_bits"] = fixed.input_frac_bits
        group = f.create_group("layer")
        _write_layer(group.create_group("0"), {"type": "input", "shape": np.array(fixed.plan.input_shape)})
        for i, spec in enumerate(layers, start=1):
            _write_layer(group.create_group(str(i)), spec)
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=1)
        sim.create_dataset("tSample", data=ticket.timesteps)
        f.attrs[DIGEST_ATTR] = tree_digest(f, skip=frozenset({f"@{DIGEST_ATTR}"}))  # netx itself has no checksum
    atomic_write_bytes(path, bio.getvalue())
    return _report(ticket, fixed, layers, notes, warnings)


def _report(ticket: Ticket, fixed: FixedNetwork, layers: list[dict[str, Any]], notes: list[str],
            warnings: list[str]) -> dict[str, Any]:
    graded = ticket.encoding.kind == "direct"
    blocks = [spec for spec in layers if spec["type"] != "flatten"]
    exact = fixed.report["spikes_equal_reference"]
    options = _loader_options(ticket, graded)
    return {
        "format": "netx",
        "layers": len(blocks),
        "types": [spec["type"] for spec in layers],
        "delay_steps": len(blocks),
        "input_message_bits": 24 if graded else 0,
        "input_frac_bits": fixed.input_frac_bits,
        "lava_dl_options": options,
        "load": ("lava.lib.dl.netx.hdf5.Network(net_config=PATH"
                 + "".join(f", {k}={v}" for k, v in options.items()) + ")"
                 + "; feed " + (f"round(x·2^{fixed.input_frac_bits}) as graded spikes" if graded else "spikes")
                 + (" in (W, H, C) order" if blocks and blocks[0]["type"] == "conv" else " flattened in C order")
                 + f"; the output of ticket step t is {len(blocks)} steps late (sink buffer index t + "
                 + f"{len(blocks)}); samples may follow each other every {ticket.timesteps} steps"),
        "same_as_lava_target": not notes,
        "lava_target_options": {"input_frac_bits": fixed.input_frac_bits} if graded else {},
        "spikes_equal_reference": False if notes else exact,
        "approximations": notes,
        "warnings": warnings,
        "conversion": fixed.report,
    }


def _loader_options(ticket: Ticket, graded: bool) -> dict[str, int]:
    """The keyword arguments of ``netx.hdf5.Network`` the file is exact with (see the module docstring)."""
    options = {"input_message_bits": 24} if graded else {}
    options.update(reset_interval=int(ticket.timesteps), reset_offset=RESET_OFFSET)
    return options


def _netx_layers(fixed: FixedNetwork,
                 allow_approximate: bool) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The layer dicts to write, the approximations taken (only with ``allow_approximate``), warnings."""
    notes: list[str] = []
    warnings: list[str] = []

    def approx(msg: str) -> None:
        if not allow_approximate:
            raise SltUnsupportedError(f"netx: {msg}; pass --allow-approximate (slt export) to write it "
                                      "approximately")
        notes.append(msg)

    specs: list[dict[str, Any]] = []
    prev_name = fixed.plan.input_name
    prev_kind = "conv" if len(fixed.plan.input_shape) == 3 else "dense"
    prev_written = "input"
    biased_so_far = False
    for layer in fixed.layers:
        syn, rec = _chain_inputs(layer, prev_name)
        _approximations(layer, approx)
        biased_so_far = biased_so_far or bool(np.any(layer.bias_mant))
        if rec and biased_so_far:
            raise SltUnsupportedError(
                f"netx: node '{layer.name}' is recurrent and a bias at or before it can make it fire before its "
                "input arrives; netx's reset (reset_interval) clears the membrane at the layer's first step but not "
                "that early spike on its way back, so the bias has no exact netx form here")
        if not np.any(syn.W.vals) and not rec:
            raise SltUnsupportedError(f"netx: node '{layer.name}' has no nonzero weight; netx's loader cannot "
                                      "scale an all-zero weight matrix")
        spec: dict[str, Any] = {"neuron": _neuron(layer), "_layer": layer}
        conv = syn.conv
        as_conv = conv is not None and not rec and prev_kind == "conv"
        if conv is not None and as_conv:
            spec.update(_conv_block(layer, conv))
        else:
            if prev_written == "conv":
                specs.append({"type": "flatten", "shape": np.array([int(np.prod(fixed.ticket.shapes[prev_name]))])})
            spec.update(_dense_block(layer, syn, rec))
        if np.all(syn.W.vals <= 0) and np.any(syn.W.vals < 0) and not rec:
            warnings.append(f"node '{layer.name}': all weights are inhibitory; netx scales such a layer to -256, "
                            "which Lava's Dense clips to -255 (exact while fewer than 128 inputs of a neuron spike "
                            "together)")
        specs.append(spec)
        prev_name, prev_written = layer.name, spec["type"]
        prev_kind = "conv" if as_conv else "dense"
    return specs, notes, warnings


def _chain_inputs(layer: FixedLayer, prev_name: str) -> tuple[FixedSynapse, list[FixedSynapse]]:
    """The layer's one feed-forward synapse (from the layer before) and its recurrence onto itself, if any."""
    ff = [s for s in layer.synapses if s.lag == 0]
    rec = [s for s in layer.synapses if s.lag == 1]
    if (len(ff) != 1 or ff[0].src != prev_name or any(s.delay for s in layer.synapses)
            or len(rec) > 1 or any(s.src != layer.name for s in rec)):
        raise SltUnsupportedError(
            f"netx: node '{layer.name}' is not fed by the layer before it alone; netx describes a chain of "
            "layers (each with at most a recurrence onto itself)"
        )
    return ff[0], rec


def _approximations(layer: FixedLayer, approx: Callable[[str], None]) -> None:
    """What netx's CUBA layer says only approximately (refused unless ``allow_approximate``)."""
    if layer.reset != "zero":
        approx(f"node '{layer.name}' uses the {layer.reset!r} reset; netx's CUBA neuron resets to zero")
    if not layer.uniform_dv:
        approx(f"node '{layer.name}' has per-neuron decays; netx stores one vDecay per layer (the median is used)")


def _neuron(layer: FixedLayer) -> dict[str, Any]:
    dv = int(np.median(layer.dv)) if not layer.uniform_dv else int(layer.dv.flat[0])
    return {"type": "CUBA", "iDecay": I_DECAY, "vDecay": dv, "vThMant": int(layer.vth), "refDelay": REF_DELAY,
            "gradedSpike": False}


def _conv_block(layer: FixedLayer, conv: ConvSpec) -> dict[str, Any]:
    spec: dict[str, Any] = dict(type="conv", shape=np.array(conv.out_shape), weight=conv.kernel.astype(np.float32),
                                stride=np.array(conv.stride), padding=np.array(conv.padding),
                                dilation=np.array(conv.dilation), groups=conv.groups,
                                kernelSize=np.array(conv.kernel.shape[2:]), inChannels=conv.in_shape[0],
                                outChannels=conv.out_shape[0])
    if np.any(layer.bias_mant):
        per_channel = layer.bias_mant.reshape(conv.out_shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise SltUnsupportedError(
                f"netx: node '{layer.name}' has a bias that varies within a channel; netx 0.6.0 reads a per-neuron "
                "conv bias in (W, H, C) order against a layer shape stored as (C, H, W), so write one bias per "
                "channel (a Conv2d bias) or export to NIR, ONNX or C")
        spec["bias"] = per_channel[:, 0].astype(np.float32)
    return spec


def _dense_block(layer: FixedLayer, syn: FixedSynapse, rec: list[FixedSynapse]) -> dict[str, Any]:
    spec: dict[str, Any] = dict(type="dense_rec" if rec else "dense", shape=np.array([layer.size]),
                                weight=syn.W.todense(np.int64).astype(np.float32), inFeatures=syn.W.shape[1],
                                outFeatures=layer.size)
    if rec:
        spec["weight_rec"] = rec[0].W.todense(np.int64).astype(np.float32)
    if np.any(layer.bias_mant):
        spec["bias"] = layer.bias_mant.astype(np.float32)
    return spec


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


__all__ = ["DIGEST_ATTR", "DIRECT_FRAC_BITS", "FORMAT_TAG", "HANDLERS", "export_netx", "need_h5py"]
