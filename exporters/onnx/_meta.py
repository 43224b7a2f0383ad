"""Constants of the exported model, its ``metadata_props`` and its sha256 digest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...errors import SltError
from ...ir.graph import Ticket

OPSET = 18
IR_VERSION = 8
FORMAT_TAG = "slt-deploy-onnx/1"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
MODES = ("loop", "unrolled")
WEIGHT_STORAGE = ("auto", "dense", "bitmask", "index", "float32")
RECORDS = ("output", "neurons", "all")
MAX_MODEL_BYTES = 2**31 - 1  # protobuf's hard limit for one serialized message
EXACT_F32_SUM = 2**24  # integers below this are exact in float32, in any summation order

META = {
    "format": "slt_deploy.format",
    "timesteps": "slt_deploy.timesteps",
    "encoding": "slt_deploy.encoding",
    "seed": "slt_deploy.seed",
    "rate_code": "slt_deploy.rate_code",
    "input_shape": "slt_deploy.input_shape",
    "output_shape": "slt_deploy.output_shape",
    "input_node": "slt_deploy.input_node",
    "output_node": "slt_deploy.output_node",
    "output_spiking": "slt_deploy.output_spiking",
    "records": "slt_deploy.records",
    "sha256": "slt_deploy.sha256",
}

INPUT_NOTES = {
    "direct": "float32 (batch, *in), fed unchanged at every step",
    "rate": ("float32 (T, batch, *in) spikes of the rate code named in slt_deploy.rate_code (docs/semantics.md): "
             "per sample K = mix(sum_i mix(S ^ (i<<32 | float32 bits of x_i))), S = mix(seed + 0x9E3779B97F4A7C15), "
             "spike = (mix(K ^ mix(t<<32 | i)) >> 40) * 2^-24 < x_i, mix = splitmix64's finaliser; "
             "slt_deploy.ratecode.spikes computes it"),
    "spikes": "float32 (T, batch, *in): the ticket's spike trains",
}

_NEEDS_ONNX = "ONNX export needs the onnx package: pip install 'slt-deploy[onnx]'"


def import_onnx() -> Any:
    """The ``onnx`` module, or :class:`SltError` saying which extra to install."""
    try:
        import onnx
    except ImportError:
        raise SltError(_NEEDS_ONNX) from None
    return onnx


def model_digest(model: Any) -> str:
    """sha256 of the serialized model without its own ``slt_deploy.sha256`` entry.

    ONNX has no checksums, so without this a flipped weight bit would run silently.
    """
    copy = type(model)()
    copy.CopyFrom(model)
    keep = [p for p in copy.metadata_props if p.key != META["sha256"]]
    del copy.metadata_props[:]
    copy.metadata_props.extend(keep)
    return hashlib.sha256(copy.SerializeToString()).hexdigest()


def metadata(ticket: Ticket, records: list[dict[str, Any]]) -> dict[str, str]:
    """The ``slt_deploy.*`` metadata entries of the model of ``ticket`` (all but the digest).

    A rate-coded ticket also names its rate code (``slt_deploy.rate_code``); a rate model without
    one was written before codes were named and reads as the retired ``pcg64-batch/0``.
    """
    rate_code = {META["rate_code"]: ticket.encoding.code} if ticket.encoding.kind == "rate" else {}
    return {
        META["format"]: FORMAT_TAG,
        META["timesteps"]: str(ticket.timesteps),
        META["encoding"]: ticket.encoding.kind,
        META["seed"]: "" if ticket.encoding.seed is None else str(int(ticket.encoding.seed)),
        **rate_code,
        META["input_shape"]: json.dumps(list(ticket.input_shape)),
        META["output_shape"]: json.dumps(list(ticket.output_shape)),
        META["input_node"]: ticket.input.name,
        META["output_node"]: ticket.output.name,
        META["output_spiking"]: "1" if ticket.output_is_spiking else "0",
        META["records"]: json.dumps(records),
    }


def stamp_digest(model: Any) -> None:
    """Append the ``slt_deploy.sha256`` entry: the digest of everything else."""
    digest = model_digest(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = META["sha256"], digest


def producer_version() -> str:
    try:
        from ... import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "0"


def doc_string(ticket: Ticket) -> str:
    kind = ticket.encoding.kind
    return (f"slt-deploy spiking network, T={ticket.timesteps}, {kind} input. input: {INPUT_NOTES[kind]}. "
            f"output: (T, batch, *out) float32. Exact float32 rounding needs graph optimizations disabled.")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]
