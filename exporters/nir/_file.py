"""Reading .nir files that cannot be trusted, and writing them atomically.

Before ``nir.read`` sees a file, the HDF5 tree is checked: hard links only (no external
or soft links, no virtual or external datasets, so a file cannot pull in data from
elsewhere on the machine), plain numeric or string datasets, a bounded nesting depth,
declared array sizes bounded by what the file could hold, and every node group with a
known NIR ``type`` and the fields ``nir.read`` needs. Failures are one-line
:class:`SltFormatError` (not HDF5, truncated, unsafe) or :class:`SltImportError`
(a well-formed file whose graph is wrong), naming the node or field.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from typing import Any

from ...atomic import atomic_write_bytes
from ...errors import SltError, SltFormatError, SltImportError, SltWarning
from ...untrusted.hdf5 import budget_for, in_child, scan_tree, tree_digest
from ._common import DIGEST_KEY, TICKET_KEY

# Fields nir.read needs per node type (nir 1.0 serialisation).
REQUIRED = {
    "Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",),
    "Conv1d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "Conv2d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "SumPool2d": ("kernel_size", "stride", "padding"), "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Delay": ("delay",), "Flatten": ("start_dim", "end_dim"), "Threshold": ("threshold",),
    "I": ("r",), "IF": ("r", "v_threshold"), "LI": ("tau", "r", "v_leak"), "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak"), "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"),
    "Input": ("shape",), "Output": ("shape",), "NIRGraph": ("nodes", "edges"),
}


def write_graph(graph: Any, path: str | os.PathLike[str]) -> int:
    """Serialise with ``nir.write`` into memory, then write the bytes atomically; returns the size."""
    import nir

    meta = graph.metadata if isinstance(graph.metadata, dict) else None
    data = _serialise(nir, graph)
    if meta is not None and TICKET_KEY in meta:  # slt's graph: sign the whole tree (see _digest_of)
        meta.pop(DIGEST_KEY, None)
        meta[DIGEST_KEY] = _digest_of(data)
        data = _serialise(nir, graph)
    atomic_write_bytes(path, data)
    return len(data)


def _serialise(nir: Any, graph: Any) -> bytes:
    buf = io.BytesIO()
    try:
        nir.write(buf, graph)
    except Exception as exc:  # noqa: BLE001 - h5py/nir raise many types
        raise SltError(f"cannot serialise the NIR graph: {type(exc).__name__}: {_line(exc)}") from None
    return buf.getvalue()


def _digest_of(source: Any) -> str:
    """The digest of a NIR file (bytes or an open h5py File): sha256 over its whole ``node`` tree
    (slt metadata, NIR fields, edges) except the ``metadata/slt.digest`` entry itself."""
    import h5py

    if isinstance(source, bytes):
        with h5py.File(io.BytesIO(source), "r") as f:
            return _digest_of(f)
    return tree_digest(source["node"], skip=frozenset({f"metadata/{DIGEST_KEY}"}))


def read_graph(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """``nir.read`` after the safety checks above, in a child process with a time limit
    (:func:`slt_deploy.untrusted.hdf5.in_child`, ``SLT_HDF5_TIMEOUT``); every failure is a one-line SltError.

    Returns the graph and the digest verdict (:func:`_check_digest`): ``"ok"``, ``"foreign"`` (not
    slt's), ``"legacy"`` (slt's, written before the digest) or ``"mismatch"``; the caller refuses a
    mismatch after its field-by-field check, whose message names the edited node when it can."""
    where = os.fspath(path)
    if not os.path.exists(where):
        raise SltFormatError(f"{where}: no such file")
    if os.path.isdir(where):
        raise SltFormatError(f"{where}: is a directory, expected a .nir file")
    if not stat.S_ISREG(os.stat(where).st_mode):
        raise SltFormatError(f"{where}: not a regular file (a FIFO, device or socket), expected a .nir file")
    return in_child(_read_graph, where, where=where)


def settle_digest(verdict: str, where: str) -> None:
    """Refuse a ``"mismatch"``, warn once about a ``"legacy"`` file (see :func:`read_graph`)."""
    if verdict == "mismatch":
        raise SltImportError(f"{where}: the file does not match its slt digest ({DIGEST_KEY}): its slt metadata, NIR "
                             "fields or edges were edited after export; export it again")
    if verdict == "legacy":
        warnings.warn(f"{where} was written by an slt-deploy without a digest ({DIGEST_KEY}): its slt metadata "
                      "(resets, encoding, T) can only be checked against NIR's standard fields; export it again "
                      "to have edits refused", SltWarning, stacklevel=3)


def _check_digest(f: Any) -> str:
    """The digest verdict of an open NIR file (see :func:`read_graph`)."""
    meta = f["node"].get("metadata")
    if meta is None or not _Scan.is_group(meta) or TICKET_KEY not in meta:
        return "foreign"  # another tool's graph: nothing of slt's to protect
    if DIGEST_KEY not in meta:
        return "legacy"
    stored = meta[DIGEST_KEY][()]
    stored = stored.decode("ascii", "replace") if isinstance(stored, bytes) else str(stored)
    return "ok" if stored == _digest_of(f) else "mismatch"


def _read_graph(where: str) -> tuple[Any, str]:
    import h5py
    import nir

    size = os.path.getsize(where)
    try:
        f = h5py.File(where, "r")
    except OSError as exc:
        raise SltFormatError(
            f"{where}: not a readable NIR file (HDF5 could not open it: {_line(exc)}); it is truncated, corrupt "
            "or not HDF5"
        ) from None
    try:
        with f:
            _Scan(where, budget_for(size)).file(f)
            verdict = _check_digest(f)
    except SltError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged files make h5py raise anything
        raise SltFormatError(f"{where}: damaged NIR file ({type(exc).__name__}: {_line(exc)})") from None
    try:
        return nir.read(where, type_check=False), verdict
    except Exception as exc:  # noqa: BLE001
        culprit = _failing_node(where)
        raise SltImportError(f"{where}: the nir reader failed{culprit}: {type(exc).__name__}: {_line(exc)}") from None


def _failing_node(where: str) -> str:
    """' at node NAME (TYPE)' for the first node nir cannot construct, to name it in the error."""
    import h5py
    import nir
    from nir.serialization import hdf2dict

    def walk(group: Any, prefix: str) -> str:
        for name in group:
            data = hdf2dict(group[name])
            label = f" at node '{prefix}{name}' ({data.get('type', '?')})"
            if data.get("type") == "NIRGraph":
                found = walk(group[name]["nodes"], f"{prefix}{name}.")
                if found:
                    return found
                continue
            try:
                nir.dict2NIRNode(dict(data))
            except Exception:  # noqa: BLE001
                return label
        return ""

    try:
        with h5py.File(where, "r") as f:
            return walk(f["node"]["nodes"], "")
    except Exception:  # noqa: BLE001
        return ""


class _Scan:
    def __init__(self, where: str, budget: int) -> None:
        self.where, self.budget, self.total = where, budget, 0

    def fail(self, msg: str, cls: type[SltError] = SltFormatError) -> None:
        raise cls(f"{self.where}: {msg}")

    def file(self, f: Any) -> None:
        scan_tree(f, self.where, self.budget)
        if "node" not in f or not self.is_group(f["node"]):
            self.fail("no 'node' group: not a NIR file")
        node = f["node"]
        if self.type_of(node, "the graph") != "NIRGraph":
            self.fail("the top-level node is not a NIRGraph")
        self.graph(node, "", 0)

    @staticmethod
    def is_group(item: Any) -> bool:
        import h5py

        return isinstance(item, h5py.Group)

    def type_of(self, group: Any, label: str) -> str:
        import h5py

        ds = group.get("type")
        if not isinstance(ds, h5py.Dataset) or ds.shape != () or h5py.check_string_dtype(ds.dtype) is None:
            self.fail(f"{label} has no 'type' string", SltImportError)
        value = ds[()]
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    # -- the NIR structure: known types and required fields
    def graph(self, group: Any, prefix: str, depth: int) -> None:
        for field in REQUIRED["NIRGraph"]:
            if field not in group:
                self.fail(f"graph '{prefix or '/'}' has no '{field}'", SltImportError)
        nodes = group["nodes"]
        if not self.is_group(nodes):
            self.fail(f"graph '{prefix or '/'}': 'nodes' is not a group", SltImportError)
        for name in nodes:
            node = nodes[name]
            label = f"node '{prefix}{name}'"
            if not self.is_group(node):
                self.fail(f"{label} is not a group", SltImportError)
            kind = self.type_of(node, label)
            if kind not in REQUIRED:
                self.fail(f"{label} has unknown NIR type {kind!r}", SltImportError)
            for field in REQUIRED[kind]:
                if field not in node:
                    self.fail(f"{label} ({kind}) has no field '{field}'", SltImportError)
            if kind == "NIRGraph":
                self.graph(node, f"{prefix}{name}.", depth + 1)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
