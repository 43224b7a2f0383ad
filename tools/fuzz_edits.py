"""Structure-aware mutations for tools/fuzz_campaign.py (the ``edit`` operation): what an attacker
who knows the format would change, beyond random bytes. Each returns the edited file's bytes.

- ``nir`` / ``netx`` (HDF5, edited with h5py; no digest recomputed): one element of a numeric
  dataset set to NaN, ±inf, ±1e38, -1, 0 or the dtype's extreme; a dataset deleted, grown by one
  element or turned into another dtype; an attribute changed or deleted. Every edit of an
  slt-written file must be refused (the digest covers the whole tree) or change nothing.
- ``onnx`` (re-signed: the ``slt_deploy.sha256`` recomputed as anybody can): a float constant
  set to NaN/±inf, or the Loop trip count set to T ± 1, 0, -1 or 10^12; the graph checks must
  refuse each.
- ``checkpoint`` (re-saved with ``torch.save``, so every CRC is right): one prune-mask element
  set to 0.5, NaN, -1 or 2, or a mask made float with a stride-0 expand; masks must be 0/1.
"""

from __future__ import annotations

import io
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

FLOATS = (float("nan"), float("inf"), -float("inf"), 1e38, -1e38, -1.0, 0.0)


def edit(kind: str, path: Path, rng: random.Random) -> bytes | None:
    """The edited bytes of ``path`` (a valid file of ``kind``), or None where ``kind`` has no editor."""
    fn = {"nir": _hdf5, "netx": _hdf5, "onnx": _onnx, "checkpoint": _checkpoint}.get(kind)
    return None if fn is None else fn(path, rng)


def _hdf5(path: Path, rng: random.Random) -> bytes:
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            datasets: list[str] = []
            groups: list[str] = ["/"]
            f.visit(lambda name: (datasets if isinstance(f[name], h5py.Dataset) else groups).append(name))
            with_attrs = [g for g in groups + datasets if len(f[g].attrs)]
            op = rng.choice(("value", "value", "value", "delete", "grow", "dtype", "attr"))
            if op == "attr" and with_attrs:
                obj = f[rng.choice(with_attrs)]
                key = rng.choice(sorted(obj.attrs))
                if rng.random() < 0.5:
                    del obj.attrs[key]
                else:
                    obj.attrs[key] = rng.choice((np.nan, -1, 0, 2**40, "x", True))
            else:
                _edit_dataset(f, rng.choice(datasets), op, rng)
        return copy.read_bytes()


def _edit_dataset(f: object, name: str, op: str, rng: random.Random) -> None:
    data = f[name][()]  # type: ignore[index]
    arr = np.array(data)
    if op == "delete":
        del f[name]  # type: ignore[attr-defined]
        return
    if op == "grow" and arr.ndim >= 1 and arr.dtype.kind in "fiub":
        arr = np.concatenate([arr, arr[:1]])
    elif op == "dtype" and arr.dtype.kind in "fiub":
        arr = arr.astype(np.float16 if arr.dtype.kind != "f" else np.int64)
    elif arr.dtype.kind in "fiub" and arr.size:
        flat = arr.reshape(-1).copy()
        i = rng.randrange(flat.size)
        if arr.dtype.kind == "f":
            flat[i] = rng.choice(FLOATS)
        else:
            info = np.iinfo(arr.dtype) if arr.dtype.kind in "iu" else None
            flat[i] = rng.choice((info.max, info.min, 0, 1)) if info is not None else not flat[i]
        arr = flat.reshape(arr.shape)
    else:
        arr = np.array(b"edited") if arr.dtype.kind in "SOU" else arr
    del f[name]  # type: ignore[attr-defined]
    f[name] = arr  # type: ignore[index]


def _onnx(path: Path, rng: random.Random) -> bytes:
    import onnx
    from onnx import numpy_helper
    from slt_deploy.exporters.onnx import META, model_digest

    model = onnx.load(path)
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 0]
    loop = next((n for n in model.graph.node if n.op_type == "Loop"), None)
    if loop is not None and (rng.random() < 0.3 or not floats):
        trip = next(t for t in model.graph.initializer if t.name == loop.input[0])
        t = int(numpy_helper.to_array(trip).reshape(-1)[0])
        trip.CopyFrom(numpy_helper.from_array(np.array(rng.choice((t + 1, t - 1, 0, -1, 10**12)), np.int64),
                                              trip.name))
    else:
        tensor = rng.choice(floats)
        arr = numpy_helper.to_array(tensor).copy()
        arr.reshape(-1)[rng.randrange(arr.size)] = rng.choice(FLOATS[:3])
        tensor.CopyFrom(numpy_helper.from_array(arr, tensor.name))
    for p in model.metadata_props:
        if p.key == META["sha256"]:
            p.value = model_digest(model)
    return model.SerializeToString()


def _checkpoint(path: Path, rng: random.Random) -> bytes:
    import torch

    sd = torch.load(path, weights_only=True)
    key = rng.choice(sorted(k for k in sd if k.endswith("_mask")))
    mask = sd[key].clone().float()
    if rng.random() < 0.2:
        mask = torch.full((1,), rng.choice((0.5, 2.0))).expand(mask.shape)
    else:
        mask.view(-1)[rng.randrange(mask.numel())] = rng.choice((0.5, float("nan"), -1.0, 2.0))
    sd[key] = mask
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()
