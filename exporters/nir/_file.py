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
from typing import Any

from ...atomic import atomic_write_bytes
from ...errors import SltError, SltFormatError, SltImportError
from ...untrusted.hdf5 import budget_for, in_child, scan_tree

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

    buf = io.BytesIO()
    try:
        nir.write(buf, graph)
    except Exception as exc:  # noqa: BLE001 - h5py/nir raise many types
        raise SltError(f"cannot serialise the NIR graph: {type(exc).__name__}: {_line(exc)}") from None
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return len(data)


def read_graph(path: str | os.PathLike[str]) -> Any:
    """``nir.read`` after the safety checks above, in a child process with a time limit
    (:func:`slt_deploy.untrusted.hdf5.in_child`, ``SLT_HDF5_TIMEOUT``); every failure is a one-line SltError."""
    where = os.fspath(path)
    if not os.path.exists(where):
        raise SltFormatError(f"{where}: no such file")
    if os.path.isdir(where):
        raise SltFormatError(f"{where}: is a directory, expected a .nir file")
    if not stat.S_ISREG(os.stat(where).st_mode):
        raise SltFormatError(f"{where}: not a regular file (a FIFO, device or socket), expected a .nir file")
    return in_child(_read_graph, where, where=where)


def _read_graph(where: str) -> Any:
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
    except SltError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged files make h5py raise anything
        raise SltFormatError(f"{where}: damaged NIR file ({type(exc).__name__}: {_line(exc)})") from None
    try:
        return nir.read(where, type_check=False)
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
