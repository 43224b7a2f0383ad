"""Per-round checkpoints of a ticket search, so that an interrupted search keeps its rounds.

Next to the output ``t.slt`` the search keeps a folder ``t.slt.search/`` with one
``round-NN.pt`` per completed round (``torch.save`` of plain tensors, lists and JSON
strings; read back with ``weights_only=True``) and ``log.json``, the log so far. Every file
is written atomically. ``--resume`` continues after the highest complete round, but only
with the options (and data) that made it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from .config import SearchConfig, SltSearchError

FORMAT = "slt-search-checkpoint/1"
_ROUND = re.compile(r"^round-(\d{2,})\.pt$")


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".search")


def completed_rounds(folder: Path) -> list[tuple[int, Path]]:
    """``(index, path)`` of every round file in ``folder``, in order."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _ROUND.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def make_folder(folder: Path) -> None:
    """Create the checkpoint folder ``OUT.search/``; an OS failure is one :class:`SltSearchError` line."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SltSearchError(f"cannot create the checkpoint folder '{folder}': {exc.strerror or exc}") from None


def save_round(folder: Path, index: int, payload: dict[str, Any], log: dict[str, Any]) -> Path:
    import torch

    make_folder(folder)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    path = folder / f"round-{index:02d}.pt"
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(folder / "log.json", (json.dumps(log, indent=2) + "\n").encode())
    return path


EXTEND = "extend.pt"  # the last pruning round of a finished search, kept so --rounds can grow it


def keep_for_extension(folder: Path, index: int) -> None:
    """After a search finished: keep round ``index`` (its last pruning round) as ``extend.pt``, drop the rest."""
    for i, p in completed_rounds(folder):
        if i == index:
            os.replace(p, folder / EXTEND)
    remove(folder, keep_extension=True)


def load_extension(folder: Path, config: SearchConfig) -> dict[str, Any] | None:
    """The kept last pruning round of a finished search, if any, for ``--resume`` with more ``--rounds``."""
    path = folder / EXTEND
    if not path.is_file():
        return None
    return _load(path, folder, config, extending=True)


def load_latest(folder: Path, config: SearchConfig) -> dict[str, Any] | None:
    """The payload of the last completed round, checked against ``config``; None if there is none."""
    rounds = completed_rounds(folder)
    if not rounds:
        return None
    index, path = rounds[-1]
    payload = _load(path, folder, config, extending=False)
    payload["index"] = index
    return payload


def _load(path: Path, folder: Path, config: SearchConfig, extending: bool) -> dict[str, Any]:
    import torch

    from ..untrusted import verify_torch_zip

    try:
        verify_torch_zip(path, error=SltSearchError)  # torch.load does not check the zip's CRC-32s
    except SltSearchError as exc:
        raise SltSearchError(f"cannot resume: {exc}; delete it to resume from the round before") from None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a one-line user error
        reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise SltSearchError(f"cannot resume: {path} is unreadable ({reason}); delete it to resume from the "
                             "round before") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SltSearchError(f"cannot resume: {path} is not a slt search checkpoint ({FORMAT})")
    saved = json.loads(payload["config"])
    now = config.to_dict()
    defaults = type(config).__dataclass_fields__
    for key in now:
        # an option added after the checkpoint was written had its default value then
        was = saved[key] if key in saved else getattr(defaults[key], "default", None)
        if was != now[key] and not (extending and key == "rounds"):
            raise SltSearchError(
                f"cannot resume: the search in {folder} was made with {key}={saved.get(key)!r}, this command asks "
                f"for {key}={now[key]!r}; use the same options, or delete the folder to start over")
    if extending and now["rounds"] <= saved["rounds"]:
        raise SltSearchError(f"nothing to resume: the search in {folder} finished its {saved['rounds']} rounds; "
                             f"give --rounds larger than {saved['rounds']} with --resume to extend it")
    if extending:
        payload["saved_rounds"] = saved["rounds"]
    return payload


def remove(folder: Path, keep_extension: bool = False) -> None:
    """Delete the round files and log this search wrote (and the extension checkpoint unless
    ``keep_extension``), then the folder if it is empty."""
    for _, p in completed_rounds(folder):
        with contextlib.suppress(OSError):
            p.unlink()
    if not keep_extension:
        with contextlib.suppress(OSError):
            (folder / EXTEND).unlink()
    with contextlib.suppress(OSError):
        (folder / "log.json").unlink()
    with contextlib.suppress(OSError):
        os.rmdir(folder)
