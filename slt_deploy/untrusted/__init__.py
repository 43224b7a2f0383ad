"""One input-safety layer shared by every loader (untrusted files).

Every file slt reads on a user's behalf (``.slt``, ``.onnx``, ``.npy`` inputs, energy profiles)
goes through these helpers, so the same rules hold everywhere:

- only regular files are read; a FIFO, a device node or a directory is refused before it is
  read (the file is opened with ``O_NONBLOCK`` so even a FIFO cannot block the open itself);
- a read reserves what the file holds, never a format's maximum: the bytes read are
  ``min(st_size, limit) + 1`` at most, so a 6 KB ticket loads under ``ulimit -v 1000000``;
- a declared size (an ``.npy`` header's shape x itemsize) is checked against the bytes the file
  really holds *before* anything is allocated;
- PyTorch checkpoints: zip CRC-32s verified before ``torch.load``, expanded/overlapping tensors and
  masks other than 0/1 refused (:mod:`.checkpoint`);
- the only exceptions that leave are :class:`~slt_deploy.errors.SltError` subclasses, one line each.
"""

from __future__ import annotations

from .checkpoint import check_mask, check_tensors, verify_torch_zip
from .files import read_bounded, read_head, regular_size
from .npy import FLOAT32_MAX, check_float32_range, load_npy

__all__ = ["FLOAT32_MAX", "check_float32_range", "check_mask", "check_tensors", "load_npy", "read_bounded",
           "read_head", "regular_size", "verify_torch_zip"]
