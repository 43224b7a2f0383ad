"""The ticket-search engine: phases, checkpoints, resume, data parallelism, export, the log.

A search is a :class:`~slt_deploy.search.methods.base.SearchMethod` (``--method``: IMP,
Early-Time, Early-Bird, or a registered plug-in) run one phase at a time; every phase is a
round of the log and is checkpointed. The engine is the methods' context
(:class:`~slt_deploy.search.methods.base.SearchContext`); see :mod:`.methods.lottery` for
the rounds of the built-in methods and docs/search.md for the equations.

Data parallel (``torchrun --nproc-per-node N -m slt_deploy search ...``): every process
holds the whole network; :class:`~slt_deploy.search.trainer.Trainer` splits each global
batch over the processes and averages gradients (DistributedDataParallel), so the processes
take the same optimiser steps as one would. Everything else is decided once:

- rank 0 validates the options, output path and data, loads checkpoints, computes every
  mask (:meth:`_Search.share_masks`) and every rule (:meth:`_Search.decide`), and
  broadcasts the result; after every round the sha256 of every rank's masks and weights is
  gathered, logged, and must agree;
- rank 0 alone writes checkpoints (atomically), the log and the ``.slt``, and prints;
- a search whose process died resumes from the last completed round with ``--resume``
  (and by itself when torchrun restarts it, ``--max-restarts``).

One process without torchrun is the same code with every collective the identity, and
trains exactly as before data parallelism existed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import SearchConfig, SltSearchError
from .data import Dataset, load_dataset
from .distributed import SAFE_AMP_ARCHS, World, masks_digest, resolve_amp, state_digest, to_cpu, to_device
from .export import LOG_SCHEMA, SearchResult, finish
from .methods import get_method
from .model import build_model, prunable
from .trainer import Masks, Progress, Trainer, prune_masks, sparsity

DEEP_CHECK_SAMPLES = 16  # default test samples run on the reference simulator for vgg16/resnet19


def run_search(config: SearchConfig, out: str | os.PathLike[str], *, log_path: str | os.PathLike[str] | None = None,
               console: Any = None, resume: bool = False, keep_checkpoints: bool = False,
               on_round: Callable[[int, dict[str, Any]], None] | None = None, dataset: Dataset | None = None,
               threads: int | None = None, device: str = "cpu", amp: str = "auto", workers: int | None = None,
               check_samples: int | None = None, world: World | None = None) -> SearchResult:
    """Run a ticket search and write ``out`` (.slt) plus its JSON log (default ``out`` with suffix .json).

    Completed rounds are checkpointed in ``<out>.search/``; with ``resume=True`` the search
    continues after the last of them (same options only). Without it, an existing checkpoint
    folder is an error rather than silently overwritten. ``on_round(index, entry)`` is called
    after each checkpoint. ``threads`` sets ``torch.set_num_threads`` (one thread is usually
    fastest for these small networks). The folder is deleted after success unless
    ``keep_checkpoints``.

    ``device``: ``cpu``, ``cuda`` or ``auto``. ``amp``: mixed precision for training,
    ``auto`` (on CUDA for vgg16/resnet19), ``on`` or ``off``. ``workers``: DataLoader
    processes for streamed data (default 0 for arrays, 2 for image folders).
    ``check_samples``: how many test samples the packed ticket is run on with the reference
    simulator (default: all; 16 for vgg16/resnet19, whose reference run costs seconds per
    sample and step on a CPU); the torch accuracy always uses the whole test set. Started by
    torchrun the search is data parallel (the world comes from the environment; pass
    ``world`` to use one set up by the caller).
    """
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
            raise SltSearchError(f"--threads must be an integer in [1, 1024], got {threads!r}")
        torch.set_num_threads(threads)
    own = world is None
    world = World.from_env(device) if world is None else world
    try:
        search = _Search(config, Path(out), log_path, console, resume, keep_checkpoints, on_round, dataset, world,
                         amp, workers, check_samples)
        result = search.run()
        if own:
            # the other ranks wait for rank 0's export, then all leave the group together: a rank tearing
            # gloo down while its peer is still connected can abort at exit (SIGABRT, seen after restarts)
            world.barrier()
        return result
    finally:
        if own:
            world.close()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


class _Search:
    """The engine of one search, and the context its method sees (methods/base.py)."""

    def __init__(self, cfg: SearchConfig, out: Path, log_path: Any, console: Any, resume: bool,
                 keep_checkpoints: bool, on_round: Any, dataset: Dataset | None, world: World, amp: str,
                 workers: int | None, check_samples: int | None = None) -> None:
        if not isinstance(cfg, SearchConfig):
            raise SltSearchError("config must be a SearchConfig")
        self.world = world
        self.cfg = cfg
        self.out = out
        self.log_path = Path(log_path) if log_path is not None else out.with_suffix(".json")
        self.folder = ckpt.checkpoint_dir(out)
        self.console = console if world.main else None
        self.resume = resume
        self.restarted = False
        if world.distributed and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0:
            self.resume = self.restarted = True  # torchrun restarted the workers: continue, never start over
        self.keep = keep_checkpoints
        self.on_round = on_round
        world.on_main(self._check_output)
        self.data = dataset if dataset is not None else self._load_data()
        self.x_train, self.x_test = self.data.for_arch(cfg.arch, cfg.encoding)
        self.y_train, self.y_test = self.data.y_train, self.data.y_test
        self._check_data()
        self.amp = resolve_amp(amp, world.device, cfg.arch)
        if workers is None:
            workers = 2 if self.data.class_names is not None else 0
        if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= 256:
            raise SltSearchError(f"--workers must be an integer in [0, 256], got {workers!r}")
        self.workers = workers
        if check_samples is not None and (not isinstance(check_samples, int) or isinstance(check_samples, bool)
                                          or check_samples < 1):
            raise SltSearchError(f"--check-samples must be an integer >= 1, got {check_samples!r}")
        default = DEEP_CHECK_SAMPLES if cfg.arch in SAFE_AMP_ARCHS else len(self.y_test)
        self.check_samples = min(len(self.y_test), default if check_samples is None else check_samples)
        self.trainer = Trainer(cfg.learning_rate, cfg.batch_size, cfg.seed, Progress(self.console), world=world,
                               amp=self.amp, workers=workers, spikes=cfg.encoding == "spikes")
        shape = tuple(self.x_train.shape[2:] if cfg.encoding == "spikes" else self.x_train.shape[1:])
        self.model = build_model(cfg.arch, shape, self.data.classes, cfg.hidden, tuple(cfg.channels), cfg.beta,
                                 cfg.threshold, cfg.seed, cfg.width).to(world.device)
        if cfg.token_keep < 1:  # spikformer's token pruning: the rule reads the training images only
            from .spikformer import important_tokens

            self.model.keep_tokens(important_tokens(np.asarray(self.x_train), self.model.patch, cfg.token_keep))
        self.total = sum(w.numel() for w in prunable(self.model).values())
        # the first optimiser of a process imports torch._dynamo (seconds): do it before any round is timed
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        self.method = get_method(cfg.method)
        self.masks: Masks | None = None
        self.saved: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.resumed_from: int | None = None

    # ------------------------------------------------------------------ setup
    def _check_output(self) -> None:
        out = self.out
        if out.is_dir():
            raise SltSearchError(f"--out '{out}' is a folder; give a file name such as ticket.slt")
        if not out.parent.is_dir():
            raise SltSearchError(f"--out '{out}': the folder '{out.parent}' does not exist")
        if self.log_path.resolve() == out.resolve():
            raise SltSearchError(f"the log {self.log_path} would overwrite the ticket; give --out a .slt name")

    def _load_data(self) -> Dataset:
        cfg, world = self.cfg, self.world
        if not world.distributed:
            return load_dataset(cfg.data, cfg.split_seed)
        loaded: list[Dataset] = []

        def validate() -> str:
            loaded.append(load_dataset(cfg.data, cfg.split_seed))
            return loaded[0].sha256

        digest = world.on_main(validate)
        if world.main:
            return loaded[0]
        return load_dataset(cfg.data, cfg.split_seed, validate=False).with_sha256(digest)

    def _check_data(self) -> None:
        cfg = self.cfg
        if cfg.encoding == "spikes":
            frames = int(self.x_train.shape[1])
            if frames != cfg.timesteps:
                from ..errors import SltInputError

                raise SltInputError(f"--encoding spikes: data {self.data.name!r} has {frames} frames per sample; "
                                    f"give --timesteps {frames}")
        if cfg.arch in SAFE_AMP_ARCHS:
            from .archs import check_input

            check_input(cfg.arch, tuple(self.x_train.shape[-3:]), self.data.name)  # type: ignore[arg-type]

    @property
    def scratch(self) -> bool:
        """Binary weights during the whole search."""
        return self.cfg.binary and self.cfg.binary_from == "scratch"

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    # ------------------------------------------------------------------ driver
    def run(self) -> SearchResult:
        world = self.world

        def load() -> Any:
            existing = ckpt.completed_rounds(self.folder)
            if existing and not self.resume:
                raise SltSearchError(
                    f"{self.folder} holds {len(existing)} completed round(s) of an earlier search; pass --resume to "
                    "continue it, or delete the folder to start over")
            payload = ckpt.load_latest(self.folder, self.cfg) if self.resume else None
            if payload is None and self.resume and self.method.extendable:
                payload = ckpt.load_extension(self.folder, self.cfg)  # a finished search, grown by --rounds
            holder.append(payload)
            return payload is not None

        holder: list[Any] = []
        found = world.on_main(load)
        payload = world.broadcast_payload(holder[0] if world.main else None) if found else None
        cfg = self.cfg
        goal = cfg.sparsity_goal
        self.say(f"[bold]{self.method.title} ticket search[/] on {self.data.name} ({len(self.x_train)} train / "
                 f"{len(self.x_test)} test), {cfg.arch}, T={cfg.timesteps}, target sparsity {goal:.1%}"
                 + (f", binary weights ({cfg.binary_from})" if cfg.binary else ""))
        if world.distributed:
            self.say(f"   data parallel: {world.size} processes ({world.backend}, {world.device.type}), "
                     f"{cfg.batch_size // world.size} samples per process per batch of {cfg.batch_size}"
                     + (f", mixed precision {str(self.amp).removeprefix('torch.')}" if self.amp else ""))
        elif self.amp is not None:
            self.say(f"   mixed precision {str(self.amp).removeprefix('torch.')} for training ({world.device})")
        if payload is not None and "saved_rounds" in payload:
            self._extend(payload)
        elif payload is not None:
            self._restore(payload)
            self.say(f"   resuming after round {self.resumed_from} ({self.folder})"
                     + (" (restarted by torchrun)" if self.restarted else ""))
        else:
            if self.resume:
                self.say(f"   nothing to resume in {self.folder}; starting from round 0")
            self._fresh()
        self.started = time.perf_counter()
        self.phases_run = 0
        while self.state["phase"] != "done":
            phase = self.state["phase"]
            self.trainer.reset_throughput()
            entry = self.method.phase(phase)(self)
            self._commit(entry)
            self.phases_run += 1
            self._overall()
        return self._finish()

    def _extend(self, payload: dict[str, Any]) -> None:
        """Grow a finished search: restore its last pruning round and prune on to the new ``--rounds``."""
        self._restore({**payload, "index": len(json.loads(payload["state"])["rounds"]) - 1})
        self.state["phase"] = self.method.extend(self)
        self.say(f"   extending the finished search from {payload['saved_rounds']} to {self.cfg.rounds} rounds "
                 f"(after its round {self.resumed_from}, {self.folder})")

    def _overall(self) -> None:
        """One line after each phase: phases done, time so far, and the ETA where the method can tell."""
        remaining = self.method.remaining_phases(self) if self.state["phase"] != "done" else 0
        elapsed = time.perf_counter() - self.started
        if remaining is None or self.state["phase"] == "done":
            return
        eta = elapsed / max(self.phases_run, 1) * remaining
        self.say(f"            overall: {self.phases_run} phase(s) done, {remaining} to go; elapsed "
                 f"{_duration(elapsed)}, ETA {_duration(eta)}")

    def _fresh(self) -> None:
        self.state = {"phase": None, "rounds": [], "dense_accuracy": None, "data_sha256": self.data.sha256,
                      "search_timesteps": self.cfg.timesteps, "et": None, "eb": None}
        self.state["phase"] = self.method.start(self)

    def _restore(self, payload: dict[str, Any]) -> None:
        self.state = json.loads(payload["state"])
        if self.state.get("data_sha256", "") != self.data.sha256:
            raise SltSearchError(f"cannot resume: the data {self.cfg.data!r} changed since the search in "
                                 f"{self.folder} started; delete the folder to start over")
        device = self.world.device
        self.model.load_state_dict(payload["model"])
        self.masks = {k: v.bool().to(device) for k, v in payload["masks"].items()} or None
        names = json.loads(payload["saved"]) if "saved" in payload else \
            [k for k in ("rewind", "init", "eb_history", "optimizer") if payload.get(k)]  # written before plug-ins
        self.saved = {k: to_device(payload[k], device) for k in names}
        if "eb_history" in self.saved:
            self.saved["eb_history"] = [{k: v.bool() for k, v in m.items()} for m in self.saved["eb_history"]]
        self.resumed_from = int(payload["index"])
        if len(self.state["rounds"]) != self.resumed_from + 1:
            raise SltSearchError(f"cannot resume: {self.folder} is inconsistent (round files and log disagree); "
                                 "delete the folder to start over")

    def _commit(self, entry: dict[str, Any]) -> None:
        world = self.world
        index = len(self.state["rounds"])
        entry = {"round": index, **entry, "checkpoint": f"round-{index:02d}.pt"}
        entry["throughput"] = self._throughput()
        entry["ranks"] = self._verify_ranks(index)
        self.state["rounds"].append(entry)
        if world.main:
            payload = {
                "config": json.dumps(self.cfg.to_dict()), "state": json.dumps(self.state),
                "model": to_cpu(self.model.state_dict()), "masks": to_cpu(dict(self.masks or {})),
                "saved": json.dumps(sorted(self.saved)), **{k: to_cpu(v) for k, v in self.saved.items()},
            }
            ckpt.save_round(self.folder, index, payload, {"schema": LOG_SCHEMA, "config": self.cfg.to_dict(),
                                                          "rounds": self.state["rounds"], "complete": False})
        acc_text = f"test acc {entry['test_accuracy']:.3f}"
        if entry["stage"] == "eb-search":
            d = entry["mask_distance_max"]
            acc_text += "  mask distance " + ("-" if d is None else f"{d:.4f}")
        self.say(f"   round {index:2d}  {entry['stage']:<9} T={entry['timesteps']}  sparsity "
                 f"{entry['sparsity']:6.1%}  {acc_text}  {entry['seconds']:.1f} s")
        tp = entry["throughput"]
        if tp["samples_per_s"] is not None:
            if world.distributed:
                eff = tp["scaling_efficiency"]
                self.say(f"            {tp['samples_per_s']:,.0f} samples/s ({world.size} processes: "
                         + ", ".join(f"{r:,.0f}" for r in tp["samples_per_s_per_rank"]) + " each)"
                         + ("" if eff is None else f", scaling efficiency {eff:.2f}"))
            else:
                self.say(f"            {tp['samples_per_s']:,.0f} samples/s")
        if self.on_round is not None:
            self.on_round(index, entry)

    def _throughput(self) -> dict[str, Any]:
        """Samples/s of this round's training loops, per rank and together, and the scaling
        efficiency: the time the ranks would have taken for the same samples training alone
        (the same steps without gradient exchange, :meth:`Trainer.probe`, all ranks at once)
        over the time they took."""
        t = self.trainer
        rows = self.world.gather_floats([float(t.samples), float(t.train_seconds), float(t.alone_seconds)])
        samples = [int(r[0]) for r in rows]
        seconds = [r[1] for r in rows]
        alone = [r[2] for r in rows]
        per_rank = [s / t if t > 0 else None for s, t in zip(samples, seconds, strict=True)]
        wall = max(seconds)
        total = sum(samples) / wall if wall > 0 else None
        eff = sum(alone) / sum(seconds) if self.world.distributed and sum(seconds) > 0 and all(alone) else None
        return {"world_size": self.world.size, "samples": samples, "train_seconds": [round(s, 4) for s in seconds],
                "samples_per_s_per_rank": [None if r is None else round(r, 2) for r in per_rank],
                "samples_per_s": None if total is None else round(total, 2),
                "alone_samples_per_s_per_rank": [round(s / a, 2) if a > 0 else None
                                                 for s, a in zip(samples, alone, strict=True)]
                if self.world.distributed else None,
                "scaling_efficiency": None if eff is None else round(eff, 4)}

    def _verify_ranks(self, index: int) -> dict[str, list[str]]:
        """Every rank's mask and weight sha256; they must agree (else the ranks went out of step)."""
        out = {"mask_sha256": self.world.gather_digests(masks_digest(self.masks)),
               "state_sha256": self.world.gather_digests(state_digest(self.model))}
        for what, digests in (("masks", out["mask_sha256"]), ("weights", out["state_sha256"])):
            for rank, d in enumerate(digests):
                if d != digests[0]:
                    raise SltSearchError(f"rank {rank} holds other {what} than rank 0 after round {index} (sha256 "
                                         f"{d[:12]} vs {digests[0][:12]}); the data-parallel search went out of step")
        return out

    # ------------------------------------------------------------------ the methods' context
    def binary_spec(self, on: bool) -> bool | frozenset[str]:
        """What ``binary=on`` means for the trainer: False, True (every layer), or the ConvPEP's weights."""
        if not on:
            return False
        if self.cfg.binary_scope == "convpep":
            from .spikformer import CONVPEP_WEIGHTS

            return CONVPEP_WEIGHTS
        return True

    def fit(self, epochs: int, timesteps: int, key: tuple[Any, ...], description: str, binary: bool | None = None,
            **kw: Any) -> float:
        t0 = time.perf_counter()
        self.trainer.fit(self.model, self.x_train, self.y_train, epochs, timesteps, masks=self.masks,
                         binary=self.binary_spec(self.scratch if binary is None else binary), key=key,
                         description=description, **kw)
        return time.perf_counter() - t0

    def evaluate(self, timesteps: int, binary: bool | None = None) -> tuple[float, float]:
        t0 = time.perf_counter()
        acc = self.trainer.accuracy(self.model, self.x_test, self.y_test, timesteps, self.masks,
                                    self.binary_spec(self.scratch if binary is None else binary))
        return acc, time.perf_counter() - t0

    def decide(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on rank 0 only; its JSON value on every rank."""
        return self.world.on_main(fn)

    def share_masks(self, fn: Callable[[], Masks]) -> Masks:
        """Masks computed once, on rank 0, broadcast to every rank and checked there by sha256."""
        world = self.world
        if world.distributed:
            holder: list[Masks] = []
            world.on_main(lambda: holder.append(to_cpu(fn())) or True)
            masks = world.broadcast_tensors(holder[0] if world.main else None)
        else:
            masks = fn()
        masks = {k: v.bool().to(world.device) for k, v in masks.items()}
        digests = world.gather_digests(masks_digest(masks))
        if any(d != digests[0] for d in digests):
            raise SltSearchError("the broadcast mask arrived different on some rank (sha256 "
                                 + ", ".join(d[:12] for d in digests) + ")")
        return masks

    def magnitude_mask(self, keep: int, among: Masks | None = None) -> Masks:
        """Global magnitude pruning to ``keep`` weights (among the entries ``among`` keeps)."""
        return self.share_masks(lambda: prune_masks(self.model, keep, among))

    def snapshot(self) -> dict[str, torch.Tensor]:
        return _clone(self.model.state_dict())

    def capture_rewind(self, epoch: int) -> None:
        if epoch == self.cfg.rewind_epoch:
            self.saved["rewind"] = self.snapshot()

    def after_ticket(self) -> str:
        return "binary" if self.cfg.binary and self.cfg.binary_from == "ticket" else "done"

    def entry(self, stage: str, timesteps: int, epochs: int, seconds: float, acc: float | None,
              eval_seconds: float, **extra: Any) -> dict[str, Any]:
        return {"stage": stage, "timesteps": timesteps, "epochs": epochs,
                "sparsity": sparsity(self.masks, self.model), "test_accuracy": acc,
                "seconds": round(seconds, 4), "eval_seconds": round(eval_seconds, 4), **extra}

    # ------------------------------------------------------------------ export
    def _finish(self) -> SearchResult:
        return finish(self)
