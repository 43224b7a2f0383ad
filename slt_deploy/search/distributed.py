"""One process per device: the ``torch.distributed`` side of a data-parallel ticket search.

A :class:`World` is what the search engine knows about its peers. Started by ``torchrun``
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in the
environment, ``WORLD_SIZE > 1``) it joins the process group (``gloo`` on CPU, ``nccl`` on
CUDA); otherwise it is the single process of a plain ``slt search`` and every collective
below is the identity, so a single process does exactly what it did before DDP existed.

The rules of the engine, built on these primitives:

- rank 0 decides, the others follow: :meth:`World.on_main` runs a function on rank 0 and
  broadcasts its (JSON) value, or its :class:`~slt_deploy.SltError`, to every rank, so a
  bad option or file fails every rank with the same one-line message;
- tensors and checkpoint payloads travel with :meth:`World.broadcast_tensors` and
  :meth:`World.broadcast_payload` (no pickles: a JSON skeleton plus raw tensors);
- :meth:`World.gather_digests` collects one sha256 per rank, so the engine can prove that
  every rank holds the same mask and weights after every round.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import SltError, SltInputError
from .config import SltSearchError

host_device = "cpu"  # torch's device type of the host (not slt's "cpu" target)
DEVICES = (host_device, "cuda", "auto")
AMP = ("auto", "on", "off")
SAFE_AMP_ARCHS = ("vgg16", "resnet19")  # neurons that keep float32 membranes under autocast
_ERRORS: dict[str, type[SltError]] = {"SltInputError": SltInputError, "SltSearchError": SltSearchError}


class RankFailed(RuntimeError):
    """Rank 0 failed inside :meth:`World.on_main` with an unexpected error (its traceback is on rank 0)."""


def launched_by_torchrun() -> bool:
    """True when the environment holds a torchrun rendezvous with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``cpu``, ``cuda`` (the process's local GPU) or ``auto`` (CUDA when available)."""
    if device not in DEVICES:
        raise SltSearchError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else host_device
    if device == host_device:
        return torch.device(host_device)
    if not torch.cuda.is_available():
        raise SltSearchError("--device cuda: PyTorch sees no CUDA device here (torch.cuda.is_available() is False); "
                             "use --device cpu or auto")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise SltSearchError(f"--device cuda: local rank {local_rank} has no GPU ({count} visible on this node); "
                             f"start at most {count} processes per node (torchrun --nproc-per-node {count})")
    return torch.device("cuda", local_rank)


def resolve_amp(amp: str, device: torch.device, arch: str) -> torch.dtype | None:
    """The autocast dtype for training, or None (float32)."""
    if amp not in AMP:
        raise SltSearchError(f"--amp {amp!r}: choose one of {', '.join(AMP)}")
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "on":
            raise SltSearchError("--amp on needs --device cuda (mixed precision is used on CUDA only)")
        return None
    if arch not in SAFE_AMP_ARCHS:
        if amp == "on":
            raise SltSearchError(f"--amp on: the {arch} net's snnTorch neurons would keep their membranes in half "
                                 f"precision; mixed precision is for {' and '.join(SAFE_AMP_ARCHS)} (or use --amp off)")
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def to_cpu(value: Any) -> Any:
    """Tensors (nested in dicts and lists) moved to the CPU, for checkpoints."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def masks_digest(masks: dict[str, torch.Tensor] | None) -> bytes:
    """sha256 over the masks, by weight name (0/1 bytes, row-major)."""
    h = hashlib.sha256()
    for name in sorted(masks or {}):
        m = masks[name]  # type: ignore[index]
        h.update(name.encode() + b"\0" + str(tuple(m.shape)).encode() + b"\0")
        h.update(m.detach().cpu().to(torch.uint8).contiguous().numpy().tobytes())
    return h.digest()


def state_digest(model: torch.nn.Module) -> bytes:
    """sha256 over the network's parameters and BatchNorm statistics (its ``state_dict``)."""
    h = hashlib.sha256()
    for name, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(name.encode() + b"\0" + str(t.dtype).encode() + str(tuple(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes())
    return h.digest()


@dataclass
class World:
    """This process's place among the search's processes (a single process by default)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device(host_device))
    backend: str | None = None
    owns_group: bool = False

    # ------------------------------------------------------------------ setup
    @classmethod
    def from_env(cls, device: str = "cpu") -> World:
        """The world torchrun describes in the environment (joining its process group), or a
        single process. An already initialised default process group is used as it is."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            rank, size = dist.get_rank(), dist.get_world_size()
            local = int(os.environ.get("LOCAL_RANK", rank))
            dev = resolve_device(device, local)
            return cls(rank, size, local, dev, dist.get_backend(), owns_group=False)
        if not launched_by_torchrun():
            return cls(device=resolve_device(device, 0))
        try:
            rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except (KeyError, ValueError):
            raise SltSearchError("WORLD_SIZE > 1 but RANK/LOCAL_RANK are missing: start the search with torchrun "
                                 "(torchrun --nproc-per-node N -m slt_deploy search ...)") from None
        dev = resolve_device(device, local)
        if not dist.is_available():
            raise SltSearchError("this PyTorch build has no torch.distributed; run one process")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        # the store torchrun's agent keeps lives across restarts (--max-restarts): without a prefix per
        # attempt, a restarted rank can read a dead rank's address and fail to connect
        store, _, _ = next(dist.rendezvous("env://"))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or "0"
        store = dist.PrefixStore(f"slt-search/attempt-{attempt}/", store)
        options: dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend, store=store, rank=rank, world_size=size, **options)
        return cls(rank, size, local, dev, backend, owns_group=True)

    def close(self) -> None:
        """Leave the process group if this world joined it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def _comm(self) -> torch.device:
        """Where collective tensors must live (nccl: the GPU; gloo: the CPU)."""
        return self.device if self.backend == "nccl" else torch.device(host_device)

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend, "device": str(self.device.type)}

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_json(self, value: Any = None) -> Any:
        """Rank 0's JSON-able ``value`` on every rank (others pass anything)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        data = json.dumps(value).encode() if self.main else b""
        length = torch.tensor([len(data)], dtype=torch.int64, device=self._comm)
        dist.broadcast(length, 0)
        buf = torch.zeros(int(length.item()), dtype=torch.uint8, device=self._comm)
        if self.main and data:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buf, 0)
        return value if self.main else json.loads(bytes(buf.cpu().numpy().tobytes()).decode())

    def on_main(self, fn: Any) -> Any:
        """Run ``fn()`` on rank 0 only and return its JSON-able value on every rank.

        An :class:`SltError` raised on rank 0 is raised on every rank with the same message
        (its class when it is one of the search's); any other error makes the other ranks
        raise :class:`RankFailed` instead of waiting forever.
        """
        if not self.distributed:
            return fn()
        message: dict[str, Any] = {}
        failure: BaseException | None = None
        if self.main:
            try:
                message = {"value": fn()}
            except SltError as exc:
                failure = exc
                message = {"error": type(exc).__name__, "message": str(exc)}
            except BaseException as exc:  # noqa: BLE001 - re-raised below after telling the others
                failure = exc
                message = {"crash": f"{type(exc).__name__}: {exc}"}
        message = self.broadcast_json(message)
        if failure is not None:
            raise failure
        if "error" in message:
            raise _ERRORS.get(message["error"], SltSearchError)(message["message"])
        if "crash" in message:
            raise RankFailed(f"rank 0 failed: {message['crash']}")
        return message["value"]

    def broadcast_tensors(self, tensors: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Rank 0's named tensors on every rank (CPU tensors; others pass None)."""
        return self.broadcast_payload(tensors if self.main else None)

    def broadcast_payload(self, payload: Any) -> Any:
        """Rank 0's nested structure of dicts, lists, JSON scalars and tensors on every rank.

        The structure goes as JSON (dict keys keep their type, so an optimiser's integer
        parameter ids survive), the tensors one by one; nothing is pickled.
        """
        if not self.distributed:
            return payload
        import torch.distributed as dist

        tensors: list[torch.Tensor] = []
        skeleton = _skeleton(payload, tensors) if self.main else None
        skeleton = self.broadcast_json(skeleton)
        specs = self.broadcast_json([[str(t.dtype).removeprefix("torch."), list(t.shape)] for t in tensors]
                                    if self.main else None)
        received: list[torch.Tensor] = []
        for i, (dtype_name, shape) in enumerate(specs):
            dtype = getattr(torch, dtype_name)
            wire = torch.uint8 if dtype == torch.bool else dtype
            if self.main:
                buf = tensors[i].detach().to(self._comm, wire).contiguous()
            else:
                buf = torch.empty(shape, dtype=wire, device=self._comm)
            dist.broadcast(buf, 0)
            received.append(buf.to(host_device, dtype))
        return payload if self.main else _rebuild(skeleton, received)

    def all_reduce_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place (moved to the communication device and back)."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        buf = tensor.to(self._comm)
        dist.all_reduce(buf)
        if buf is not tensor:
            tensor.copy_(buf.to(tensor.device))
        return tensor

    def gather_floats(self, values: list[float]) -> list[list[float]]:
        """Every rank's list of floats (same length on every rank), in rank order."""
        if not self.distributed:
            return [list(values)]
        import torch.distributed as dist

        mine = torch.tensor(values, dtype=torch.float64, device=self._comm)
        out = [torch.zeros_like(mine) for _ in range(self.size)]
        dist.all_gather(out, mine)
        return [t.cpu().tolist() for t in out]

    def gather_digests(self, digest: bytes) -> list[str]:
        """Every rank's 32-byte digest, as hex, in rank order."""
        if not self.distributed:
            return [digest.hex()]
        import torch.distributed as dist

        mine = torch.frombuffer(bytearray(digest), dtype=torch.uint8).to(self._comm)
        out = [torch.zeros_like(mine) for _ in range(self.size)]
        dist.all_gather(out, mine)
        return [bytes(t.cpu().numpy().tobytes()).hex() for t in out]


def _skeleton(value: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return {"t": len(tensors) - 1}
    if isinstance(value, dict):
        return {"d": [[k, _skeleton(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"l": [_skeleton(v, tensors) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"v": value}
    raise TypeError(f"cannot broadcast a {type(value).__name__}")


def _rebuild(skeleton: Any, tensors: list[torch.Tensor]) -> Any:
    if "t" in skeleton:
        return tensors[skeleton["t"]]
    if "d" in skeleton:
        return {k: _rebuild(v, tensors) for k, v in skeleton["d"]}
    if "l" in skeleton:
        return [_rebuild(v, tensors) for v in skeleton["l"]]
    return skeleton["v"]
