"""PyTorch checkpoints (``torch.save`` zips) read as untrusted input.

``torch.load`` does not check the zip's CRC-32s, so flipped bytes inside a tensor's data member
load as a different network (46 of 70 random flips packed with exit 0). :func:`verify_torch_zip`
runs before ``torch.load(weights_only=True)``:

- member count and the sum of declared uncompressed sizes bounded (a zip bomb is refused from its
  central directory, before anything is inflated);
- ``ZipFile.testzip()``: every member read once and its CRC-32 compared with the stored one.

After loading, :func:`check_tensors` refuses, before any arithmetic allocates:

- tensors that are not plain strided dense tensors (sparse, quantized, nested, meta);
- expanded views: a stride 0 on a dimension of size > 1 (``torch.zeros(1).expand(2**16, 2**16)``
  is a 43 KB file and 4 GiB once ``orig * mask`` is computed);
- views holding more elements than their storage (overlapping strides);
- more than ``max_bytes`` of tensor data in total (numel x element size, Python ints).

:func:`check_mask` requires a prune mask to be ``bool`` or exactly 0/1 (PyTorch computes
``weight = orig * mask``, so 0.5, -1 or NaN are not "keep").
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from typing import Any

from ..errors import SltError, SltImportError

MAX_MEMBERS = 1 << 16
MAX_TENSOR_BYTES = 64 << 30
ZIP_MAGIC = b"PK\x03\x04"


def verify_torch_zip(path: str | os.PathLike[str], *, error: type[SltError] = SltImportError,
                     max_bytes: int = MAX_TENSOR_BYTES) -> None:
    """Refuse a ``torch.save`` zip with a bad CRC-32, too many members or oversized declared members.
    Files that are not zips (torch's legacy format) are left to ``torch.load``."""
    where = os.fsdecode(os.fspath(path))
    try:
        with open(where, "rb") as fh:
            if fh.read(4) != ZIP_MAGIC:
                return
        with zipfile.ZipFile(where) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise error(f"checkpoint {where!r}: {len(infos)} zip members, above the limit of {MAX_MEMBERS}")
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise error(f"checkpoint {where!r}: its members declare {declared} bytes, above the "
                            f"{max_bytes}-byte limit")
            bad = zf.testzip()
    except SltError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile raises BadZipFile, ValueError, OSError, EOFError, zlib.error
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"checkpoint {where!r} is a corrupt zip ({reason[:160]})") from None
    if bad is not None:
        raise error(f"checkpoint {where!r} is corrupt: member {bad!r} fails its CRC-32 check "
                    "(the file was changed or damaged after torch.save)")


def _tensor_problem(t: Any) -> str | None:
    import torch

    if t.layout != torch.strided or t.is_quantized or getattr(t, "is_nested", False) or t.is_meta:
        return f"is not a plain dense tensor (layout {t.layout})"
    if any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride(), strict=True)):
        return f"is an expanded view (stride 0) of shape {tuple(t.shape)}"
    if any(st < 0 for st in t.stride()):
        return "has a negative stride"
    itemsize = t.element_size()
    if t.numel() and (t.storage_offset() + sum((n - 1) * st for n, st in zip(t.shape, t.stride(), strict=True)) + 1) \
            * itemsize > t.untyped_storage().nbytes():
        return "reaches past its storage"
    if t.numel() * itemsize > t.untyped_storage().nbytes():
        return f"has overlapping strides ({t.numel()} elements on {t.untyped_storage().nbytes()} bytes of storage)"
    return None


def check_tensors(state: Mapping[str, Any], where: str, *, error: type[SltError] = SltImportError,
                  max_bytes: int = MAX_TENSOR_BYTES) -> None:
    """Refuse non-dense, expanded, overlapping or oversized tensors in a loaded state dict (see the module doc)."""
    total = 0
    for key, t in state.items():
        problem = _tensor_problem(t)
        if problem:
            raise error(f"checkpoint {where!r}: tensor {key!r} {problem}; save plain tensors (.contiguous())")
        total += math.prod(t.shape) * t.element_size()
        if total > max_bytes:
            raise error(f"checkpoint {where!r}: its tensors hold more than {max_bytes} bytes")


def check_mask(name: str, mask: Any, *, error: type[SltError] = SltImportError) -> None:
    """A prune mask must be bool or hold exactly 0 and 1 (``weight = orig * mask``)."""
    import torch

    if mask.dtype == torch.bool:
        return
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)].flatten()[:1].tolist() if not mask.is_complex() else ["complex"]
        raise error(f"prune mask {name} holds values other than 0 and 1 (e.g. {bad[0] if bad else 'NaN'}); "
                    "PyTorch computes weight = orig * mask, so only 0/1 (or bool) masks are a keep-mask")
