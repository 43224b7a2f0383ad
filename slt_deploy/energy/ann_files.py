"""Reading an ANN baseline's weights: a ``.safetensors`` file or a ``.pt``/``.pth`` state dict read
with ``torch.load(weights_only=True)`` (never an arbitrary pickle; the zip's CRC-32s checked
first). Every problem is one :class:`SltAnnError` line. Used by :mod:`.ann`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SltEnergyError

MAX_ANN_BYTES = 2 << 30


class SltAnnError(SltEnergyError):
    """An ANN baseline cannot be used: unreadable or unsafe file, or not the ticket's architecture."""


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise SltAnnError("the measured ANN baseline runs the ANN with PyTorch: pip install 'slt-deploy[torch]'") \
            from None
    return torch


def load_ann_file(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of an ANN weights file: ``.safetensors``, or a ``.pt``/``.pth`` state
    dict read with ``torch.load(weights_only=True)``. Every problem is one :class:`SltAnnError` line."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SltAnnError(f"{path}: no such ANN file") from None
    except OSError as exc:
        raise SltAnnError(f"{path}: cannot read the ANN file ({exc.strerror or type(exc).__name__})") from None
    if path.is_dir():
        raise SltAnnError(f"{path}: is a directory; give the ANN's .safetensors or .pt file")
    if size > MAX_ANN_BYTES:
        raise SltAnnError(f"{path}: ANN file is larger than 2 GiB")
    if path.name.endswith(".safetensors"):
        return _load_safetensors(path)
    if path.suffix.lower() in (".pt", ".pth", ".bin", ".ckpt"):
        return _load_torch(path), {}
    raise SltAnnError(f"{path}: unknown ANN file type; give a .safetensors file or a .pt state dict")


def _load_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: np.asarray(f.get_tensor(k)) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltAnnError(f"{path}: not a readable safetensors file ({reason})") from None
    return tensors, meta


def _load_torch(path: Path) -> dict[str, np.ndarray]:
    torch = _torch()
    import pickle

    from ..untrusted import verify_torch_zip

    verify_torch_zip(path, error=SltAnnError)  # torch.load does not check the zip's CRC-32s
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a pickle of Python objects: corrupt
            raise SltAnnError(f"{path}: not a readable PyTorch state dict (corrupt or not a torch.save file)") \
                from None
        raise SltAnnError(f"{path}: not a weights-only file (it pickles Python objects, which is refused); save "
                          "model.state_dict() (or a .safetensors file) instead") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, AttributeError, KeyError,
            IndexError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltAnnError(f"{path}: not a readable PyTorch state dict ({reason[:160]})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise SltAnnError(f"{path}: holds a {type(obj).__name__}, not a state dict (name -> tensor)")
    out: dict[str, np.ndarray] = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise SltAnnError(f"{path}: state dict key {k!r} is not a string")
        if isinstance(v, torch.Tensor):
            if v.is_complex() or not (v.is_floating_point() or v.dtype in (torch.int64, torch.int32, torch.bool)):
                raise SltAnnError(f"{path}: tensor {k!r} has dtype {v.dtype}; expected real numbers")
            out[k] = v.detach().to(torch.float64 if v.is_floating_point() else v.dtype).numpy()
    if not out:
        raise SltAnnError(f"{path}: the state dict holds no tensors")
    return out


__all__ = ["MAX_ANN_BYTES", "SltAnnError", "load_ann_file"]
