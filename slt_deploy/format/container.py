"""The .slt container: a safetensors file with the graph and checksums in its metadata.

Writing is atomic (temporary file in the target directory, fsync, ``os.replace``).
Reading treats the file as untrusted: every problem is an :class:`SltFormatError` with a
one-line reason, and the loader checks every declared size against the file size before
it allocates anything (see docs/format.md, "Loader guarantees").
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import SltFormatError, SltValidationError
from ..ir.graph import Ticket
from .schema import check_graph, graph_to_ticket, graph_version, ticket_to_graph

FORMAT_NAME = "slt"
FORMAT_VERSION = 2  # the newest version this code reads and writes
READABLE_VERSIONS = (1, 2)
MAX_FILE_BYTES = 4 << 30
MAX_HEADER_BYTES = 16 << 20
# Decoding may allocate at most FLOOR + PER_BYTE * file_size array elements (masks,
# weights, broadcast parameters): a small file cannot claim a huge network.
DECODE_FLOOR_ELEMENTS = 1 << 25
DECODE_ELEMENTS_PER_BYTE = 4096
_METADATA_KEYS = ("format", "format_version", "graph", "graph_sha256", "sha256")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII only: the same ticket always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def tensor_sha256(a: np.ndarray) -> str:
    """Hex sha256 of the array's raw little-endian bytes (its bytes in the file)."""
    le = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return hashlib.sha256(le.tobytes()).hexdigest()


# ===================================================================== writing
def assemble(graph: dict[str, Any], tensors: dict[str, np.ndarray]) -> bytes:
    """The file bytes for a graph JSON object and its tensors (checksums computed here)."""
    from safetensors.numpy import save

    graph_text = canonical_json(graph)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(graph_version(graph)),
        "graph": graph_text,
        "graph_sha256": hashlib.sha256(graph_text.encode("ascii")).hexdigest(),
        "sha256": canonical_json({k: tensor_sha256(a) for k, a in sorted(tensors.items())}),
    }
    le = {k: np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for k, a in tensors.items()}
    return _sorted_metadata(save(le, metadata=metadata))


def _sorted_metadata(data: bytes) -> bytes:
    """Reorder the metadata keys of a safetensors header alphabetically (same length).

    safetensors writes metadata in hash-map order, which varies between runs; sorting it
    makes the same ticket always give the same bytes. The tensor entries, lengths and
    padding stay exactly as safetensors wrote them.
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    ordered = {"__metadata__": header.pop("__metadata__"), **header}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) != len(data[8:8 + n].rstrip(b" ")):
        return data  # unexpected serializer output: keep it (valid, just not canonical)
    return data[:8] + text.ljust(n, b" ") + data[8 + n:]


def serialize(ticket: Ticket) -> bytes:
    """The .slt bytes of ``ticket``."""
    if not isinstance(ticket, Ticket):
        raise SltValidationError(f"expected a Ticket, got {type(ticket).__name__}")
    return assemble(*ticket_to_graph(ticket))


def write_slt(ticket: Ticket, path: str | os.PathLike[str]) -> None:
    """Write ``ticket`` to ``path`` atomically: the old file stays intact if anything fails."""
    atomic_write_bytes(path, serialize(ticket))


# ===================================================================== reading
class TensorTable:
    """The loaded tensors; each must be taken exactly once with the dtype and shape the graph needs."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self._tensors = tensors
        self._used: set[str] = set()

    def take(self, node: str, key: str, role: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        a = self._tensors.get(key)
        if a is None:
            raise SltFormatError(f"node '{node}': tensor '{key}' ({role}) is missing from the file")
        if key in self._used:
            raise SltFormatError(f"node '{node}': tensor '{key}' is referenced twice")
        if a.dtype != dtype or a.shape != tuple(shape):
            raise SltFormatError(
                f"node '{node}': tensor '{key}' ({role}) is {a.dtype.name} {list(a.shape)}, "
                f"the graph needs {np.dtype(dtype).name} {list(shape)}"
            )
        self._used.add(key)
        return a

    def check_all_used(self) -> None:
        unused = sorted(self._tensors.keys() - self._used)
        if unused:
            raise SltFormatError(f"tensor '{unused[0]}' is not referenced by the graph")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_header(data: bytes) -> dict[str, Any]:
    """The safetensors header object, checked byte for byte (no allocation beyond it)."""
    if len(data) < 8:
        raise SltFormatError(f"not a .slt file: only {len(data)} bytes, too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise SltFormatError(f"not a .slt file: header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > len(data):
        raise SltFormatError(f"truncated or not a .slt file: header claims {n} bytes, file has {len(data) - 8}")
    raw = data[8:8 + n]
    if not raw.startswith(b"{") or not raw.rstrip(b" ").endswith(b"}"):
        raise SltFormatError("not a .slt file: no safetensors JSON header (wrong magic)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SltFormatError(f"corrupt header: invalid JSON ({_one_line(exc, 120)})") from None
    if not isinstance(header, dict):
        raise SltFormatError("corrupt header: not a JSON object")
    return header


def _check_metadata(header: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Format name and version, graph checksum; returns the graph JSON and the tensor checksums."""
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise SltFormatError("not a .slt file: safetensors metadata has no format='slt'")
    version = meta.get("format_version")
    if version not in [str(v) for v in READABLE_VERSIONS]:
        raise SltFormatError(
            f"unsupported .slt format version {_one_line(repr(version), 40)}; this slt-deploy reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))} (upgrade slt-deploy for newer files)"
        )
    for key in _METADATA_KEYS:
        if not isinstance(meta.get(key), str):
            raise SltFormatError(f"corrupt header: metadata key '{key}' is missing")
    graph_text = meta["graph"]
    if hashlib.sha256(graph_text.encode("utf-8", "surrogatepass")).hexdigest() != meta["graph_sha256"]:
        raise SltFormatError("checksum mismatch in the graph metadata (file is corrupt)")
    try:
        graph = json.loads(graph_text)
        sums = json.loads(meta["sha256"])
    except (ValueError, RecursionError) as exc:
        raise SltFormatError(f"corrupt header: invalid JSON in metadata ({_one_line(exc, 120)})") from None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise SltFormatError("corrupt header: 'sha256' must map tensor names to hex digests")
    names = set(header) - {"__metadata__"}
    if names != set(sums):
        odd = sorted(names ^ set(sums))[0]
        raise SltFormatError(f"corrupt header: tensor '{odd}' has no checksum or no data")
    return graph, sums


def _load_tensors(data: bytes, sums: dict[str, str]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except Exception as exc:  # noqa: BLE001 - any safetensors failure is a corrupt container
        raise SltFormatError(f"corrupt safetensors container: {_one_line(exc, 160)}") from None
    for key in sorted(tensors):
        if tensor_sha256(tensors[key]) != sums.get(key):
            raise SltFormatError(f"checksum mismatch in tensor '{key}' (file is corrupt)")
    return tensors


def decode(data: bytes) -> tuple[Ticket, dict[str, Any], dict[str, np.ndarray]]:
    """Ticket, graph JSON and tensors of .slt bytes; any problem is an :class:`SltFormatError`."""
    try:
        header = _parse_header(data)
        graph, sums = _check_metadata(header)
        elements = check_graph(graph, int(header["__metadata__"]["format_version"]))
        budget = DECODE_FLOOR_ELEMENTS + DECODE_ELEMENTS_PER_BYTE * len(data)
        if elements > budget:
            raise SltFormatError(
                f"graph declares {elements} array elements, more than a {len(data)}-byte file may decode to "
                f"(limit {budget})"
            )
        tensors = _load_tensors(data, sums)
        table = TensorTable(tensors)
        try:
            ticket = graph_to_ticket(graph, table.take)
        except SltValidationError as exc:
            raise SltFormatError(f"invalid ticket: {_one_line(exc)}") from None
        table.check_all_used()
        for name, shape in ticket.shapes.items():
            if math.prod(shape) > budget:
                raise SltFormatError(f"node '{name}': output shape {shape} is larger than the file allows")
        return ticket, graph, tensors
    except SltFormatError as exc:
        raise SltFormatError(_one_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - untrusted input: nothing else may escape
        raise SltFormatError(f"corrupt .slt file ({type(exc).__name__}: {_one_line(exc, 160)})") from None


def deserialize(data: bytes) -> Ticket:
    """The Ticket stored in .slt bytes."""
    return decode(data)[0]


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, refusing what is not a regular file of at most MAX_FILE_BYTES; the read
    reserves the file's own size, not the limit (:func:`slt_deploy.untrusted.read_bounded`)."""
    from ..untrusted import read_bounded

    return read_bounded(path, MAX_FILE_BYTES, error=SltFormatError, what="a .slt file")


def read_verified(path: str | os.PathLike[str]) -> tuple[Ticket, dict[str, Any], dict[str, np.ndarray]]:
    """Like :func:`decode` on a file; errors name the file."""
    data = read_bytes(path)
    try:
        return decode(data)
    except SltFormatError as exc:
        raise SltFormatError(_one_line(f"{os.fsdecode(os.fspath(path))}: {exc}", 400)) from None


def read_slt(path: str | os.PathLike[str]) -> Ticket:
    """Load the Ticket in a .slt file; any malformed file raises :class:`SltFormatError`."""
    return read_verified(path)[0]
