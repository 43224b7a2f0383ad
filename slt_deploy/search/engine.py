"""The ticket search driver: rounds, checkpoints, resume, export to .slt, the JSON log.

Rounds per method (each completed round is checkpointed, see :mod:`.checkpoint`):

    imp  dense → prune 1 … R                       → [binary fine-tune]
    et   dense (warm-up epoch at T, pick T', rest at T') → prune 1 … R at T' → final at T → [binary]
    eb   eb-search epoch 1, 2, … (until the masks settle) → final (from the init, with the mask) → [binary]

- *dense*: train the dense network for ``epochs`` epochs; the weights after ``rewind_epoch``
  epochs are remembered for late rewinding.
- *prune r*: global magnitude pruning to the ladder ``1 − (1 − f)^r`` (over every Linear and
  Conv2d weight), rewind the kept weights, biases and BatchNorm affine parameters to the
  remembered ones (running statistics are not rewound), retrain with the mask frozen.
- *eb-search*: one dense epoch; the global magnitude mask at the target sparsity is taken
  after every epoch; the search stops once the largest pairwise Hamming distance among the
  last ``eb_window`` masks is below ``eb_threshold`` (or after ``eb_max_epochs``).
- *final*: ET retrains the last mask at the full T from the rewound weights; EB trains its
  mask from the original initialisation.
- *binary*: ``binary_from="ticket"`` fine-tunes the finished ticket with α·sign weights.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import api
from ..atomic import atomic_write_bytes
from ..ir.graph import Ticket
from . import checkpoint as ckpt
from .config import SearchConfig, SltSearchError
from .data import Dataset, load_dataset
from .model import build_model, prunable
from .rules import (
    early_bird_converged,
    ladder_keep_counts,
    mask_distance,
    max_pairwise_distance,
    normalised_kl,
    pick_early_timestep,
)
from .trainer import Masks, Progress, Trainer, apply_masks, materialize, prune_masks, rewind_state, sparsity

LOG_SCHEMA = "slt-search-log/1"
NAMES = {"imp": "IMP", "et": "Early-Time", "eb": "Early-Bird"}


@dataclass
class SearchResult:
    """What :func:`run_search` produced: the ticket (also saved at ``path``), the log (also
    at ``log_path``), the trained network with its effective weights, and the masks."""

    ticket: Ticket
    path: Path
    log_path: Path
    log: dict[str, Any]
    model: torch.nn.Module
    masks: Masks


def run_search(config: SearchConfig, out: str | os.PathLike[str], *, log_path: str | os.PathLike[str] | None = None,
               console: Any = None, resume: bool = False, keep_checkpoints: bool = False,
               on_round: Callable[[int, dict[str, Any]], None] | None = None, dataset: Dataset | None = None,
               threads: int | None = None) -> SearchResult:
    """Run a ticket search and write ``out`` (.slt) plus its JSON log (default ``out`` with suffix .json).

    Completed rounds are checkpointed in ``<out>.search/``; with ``resume=True`` the search
    continues after the last of them (same options only). Without it, an existing checkpoint
    folder is an error rather than silently overwritten. ``on_round(index, entry)`` is called
    after each checkpoint. ``threads`` sets ``torch.set_num_threads`` (one thread is usually
    fastest for these small networks). The folder is deleted after success unless
    ``keep_checkpoints``.
    """
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise SltSearchError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    return _Search(config, Path(out), log_path, console, resume, keep_checkpoints, on_round, dataset).run()


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


class _Search:
    def __init__(self, cfg: SearchConfig, out: Path, log_path: Any, console: Any, resume: bool,
                 keep_checkpoints: bool, on_round: Any, dataset: Dataset | None) -> None:
        if not isinstance(cfg, SearchConfig):
            raise SltSearchError("config must be a SearchConfig")
        if out.is_dir():
            raise SltSearchError(f"output {out} is a folder; give a file name such as ticket.slt")
        if not out.parent.is_dir():
            raise SltSearchError(f"output folder {out.parent} does not exist")
        self.cfg = cfg
        self.out = out
        self.log_path = Path(log_path) if log_path is not None else out.with_suffix(".json")
        if self.log_path.resolve() == out.resolve():
            raise SltSearchError(f"the log {self.log_path} would overwrite the ticket; give --out a .slt name")
        self.folder = ckpt.checkpoint_dir(out)
        self.console = console
        self.resume = resume
        self.keep = keep_checkpoints
        self.on_round = on_round
        self.data = dataset if dataset is not None else load_dataset(cfg.data, cfg.split_seed)
        self.x_train, self.x_test = self.data.for_arch(cfg.arch)
        self.y_train, self.y_test = self.data.y_train, self.data.y_test
        self.trainer = Trainer(cfg.learning_rate, cfg.batch_size, cfg.seed, Progress(console))
        self.model = build_model(cfg.arch, tuple(self.x_train.shape[1:]), self.data.classes, cfg.hidden,
                                 tuple(cfg.channels), cfg.beta, cfg.threshold, cfg.seed)
        self.total = sum(w.numel() for w in prunable(self.model).values())
        # the first optimiser of a process imports torch._dynamo (seconds): do it before any round is timed
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        self.masks: Masks | None = None
        self.rewind: dict[str, torch.Tensor] | None = None
        self.init: dict[str, torch.Tensor] | None = None
        self.eb_history: list[Masks] = []
        self.opt_state: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        self.resumed_from: int | None = None

    # ------------------------------------------------------------------ driver
    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    @property
    def scratch(self) -> bool:
        """Binary weights during the whole search."""
        return self.cfg.binary and self.cfg.binary_from == "scratch"

    def run(self) -> SearchResult:
        existing = ckpt.completed_rounds(self.folder)
        if existing and not self.resume:
            raise SltSearchError(
                f"{self.folder} holds {len(existing)} completed round(s) of an earlier search; pass --resume to "
                "continue it, or delete the folder to start over")
        payload = ckpt.load_latest(self.folder, self.cfg) if self.resume else None
        cfg = self.cfg
        goal = cfg.sparsity_goal
        self.say(f"[bold]{NAMES[cfg.method]} ticket search[/] on {self.data.name} ({len(self.x_train)} train / "
                 f"{len(self.x_test)} test), {cfg.arch}, T={cfg.timesteps}, target sparsity {goal:.1%}"
                 + (f", binary weights ({cfg.binary_from})" if cfg.binary else ""))
        if payload is not None:
            self._restore(payload)
            self.say(f"   resuming after round {self.resumed_from} ({self.folder})")
        else:
            if self.resume:
                self.say(f"   nothing to resume in {self.folder}; starting from round 0")
            self._fresh()
        while self.state["phase"] != "done":
            phase = self.state["phase"]
            entry = getattr(self, f"_phase_{phase.replace('-', '_')}")()
            self._commit(entry)
        return self._finish()

    def _fresh(self) -> None:
        cfg = self.cfg
        self.state = {
            "phase": "eb-search" if cfg.method == "eb" else "dense",
            "rounds": [], "imp_round": 0, "dense_accuracy": None, "data_sha256": self.data.sha256,
            "search_timesteps": None if cfg.method == "et" else cfg.timesteps, "et": None,
            "eb": {"epochs": 0, "max_distance": [], "previous_distance": [], "converged": False,
                   "stop_epoch": None} if cfg.method == "eb" else None,
        }
        if cfg.method == "eb":
            self.init = _clone(self.model.state_dict())
        if cfg.rewind_epoch == 0:
            self.rewind = _clone(self.model.state_dict())

    def _restore(self, payload: dict[str, Any]) -> None:
        self.state = json.loads(payload["state"])
        if self.state.get("data_sha256", "") != self.data.sha256:
            raise SltSearchError(f"cannot resume: the data {self.cfg.data!r} changed since the search in "
                                 f"{self.folder} started; delete the folder to start over")
        self.model.load_state_dict(payload["model"])
        self.masks = {k: v.bool() for k, v in payload["masks"].items()} or None
        self.rewind = payload["rewind"] or None
        self.init = payload["init"] or None
        self.eb_history = [{k: v.bool() for k, v in m.items()} for m in payload["eb_history"]]
        self.opt_state = payload["optimizer"] or None
        self.resumed_from = int(payload["index"])
        if len(self.state["rounds"]) != self.resumed_from + 1:
            raise SltSearchError(f"cannot resume: {self.folder} is inconsistent (round files and log disagree); "
                                 "delete the folder to start over")

    def _commit(self, entry: dict[str, Any]) -> None:
        index = len(self.state["rounds"])
        entry = {"round": index, **entry, "checkpoint": f"round-{index:02d}.pt"}
        self.state["rounds"].append(entry)
        payload = {
            "config": json.dumps(self.cfg.to_dict()), "state": json.dumps(self.state),
            "model": self.model.state_dict(), "masks": dict(self.masks or {}), "rewind": self.rewind or {},
            "init": self.init or {}, "eb_history": [dict(m) for m in self.eb_history],
            "optimizer": self.opt_state or {},
        }
        ckpt.save_round(self.folder, index, payload, {"schema": LOG_SCHEMA, "config": self.cfg.to_dict(),
                                                      "rounds": self.state["rounds"], "complete": False})
        acc_text = f"test acc {entry['test_accuracy']:.3f}"
        if entry["stage"] == "eb-search":
            d = entry["mask_distance_max"]
            acc_text += "  mask distance " + ("-" if d is None else f"{d:.4f}")
        self.say(f"   round {index:2d}  {entry['stage']:<9} T={entry['timesteps']}  sparsity "
                 f"{entry['sparsity']:6.1%}  {acc_text}  {entry['seconds']:.1f} s")
        if self.on_round is not None:
            self.on_round(index, entry)

    # ------------------------------------------------------------------ helpers
    def _fit(self, epochs: int, timesteps: int, key: tuple[Any, ...], description: str, binary: bool | None = None,
             **kw: Any) -> float:
        t0 = time.perf_counter()
        self.trainer.fit(self.model, self.x_train, self.y_train, epochs, timesteps, masks=self.masks,
                         binary=self.scratch if binary is None else binary, key=key, description=description, **kw)
        return time.perf_counter() - t0

    def _evaluate(self, timesteps: int, binary: bool | None = None) -> tuple[float, float]:
        t0 = time.perf_counter()
        acc = self.trainer.accuracy(self.model, self.x_test, self.y_test, timesteps, self.masks,
                                    self.scratch if binary is None else binary)
        return acc, time.perf_counter() - t0

    def _capture_rewind(self, epoch: int) -> None:
        if epoch == self.cfg.rewind_epoch:
            self.rewind = _clone(self.model.state_dict())

    def _after_ticket(self) -> str:
        return "binary" if self.cfg.binary and self.cfg.binary_from == "ticket" else "done"

    def _entry(self, stage: str, timesteps: int, epochs: int, seconds: float, acc: float | None,
               eval_seconds: float, **extra: Any) -> dict[str, Any]:
        return {"stage": stage, "timesteps": timesteps, "epochs": epochs,
                "sparsity": sparsity(self.masks, self.model), "test_accuracy": acc,
                "seconds": round(seconds, 4), "eval_seconds": round(eval_seconds, 4), **extra}

    # ------------------------------------------------------------------ phases
    def _phase_dense(self) -> dict[str, Any]:
        cfg = self.cfg
        T = cfg.timesteps
        if cfg.method == "et":
            seconds = self._fit(1, T, ("dense",), f"warm-up epoch (T={T})", on_epoch=self._capture_rewind)
            t0 = time.perf_counter()
            batch = self.x_train[:cfg.batch_size]
            kl = self.trainer.timestep_kl(self.model, batch, T, binary=self.scratch)
            search_T = pick_early_timestep(kl, cfg.et_threshold)
            seconds += time.perf_counter() - t0
            self.state["et"] = {"kl": kl, "normalised_kl": normalised_kl(kl), "threshold": cfg.et_threshold,
                                "batch": len(batch), "search_timesteps": search_T}
            self.state["search_timesteps"] = search_T
            self.say(f"   Early-Time: normalised KL(T'=1..{T - 1}) = "
                     + " ".join(f"{v:.2f}" for v in normalised_kl(kl)) + f" -> search at T'={search_T}")
            if cfg.epochs > 1:
                seconds += self._fit(cfg.epochs - 1, search_T, ("dense",), f"dense training (T'={search_T})",
                                     first_epoch=2, on_epoch=self._capture_rewind)
        else:
            search_T = T
            seconds = self._fit(cfg.epochs, T, ("dense",), f"dense training (T={T})", on_epoch=self._capture_rewind)
        acc, ev = self._evaluate(search_T)
        acc_T, ev2 = (acc, 0.0) if search_T == T else self._evaluate(T)
        self.state["dense_accuracy"] = acc_T
        self.state["phase"] = "prune"
        return self._entry("dense", search_T, cfg.epochs, seconds, acc, ev + ev2, test_accuracy_full_T=acc_T)

    def _phase_prune(self) -> dict[str, Any]:
        cfg = self.cfg
        r = self.state["imp_round"] + 1
        T = self.state["search_timesteps"]
        t0 = time.perf_counter()
        keep = ladder_keep_counts(self.total, cfg.rounds, cfg.prune_fraction)[r]
        self.masks = prune_masks(self.model, keep, self.masks)
        assert self.rewind is not None
        rewind_state(self.model, self.rewind)
        apply_masks(self.model, self.masks)
        seconds = time.perf_counter() - t0
        s = sparsity(self.masks, self.model)
        seconds += self._fit(cfg.epochs, T, ("prune", r), f"round {r}/{cfg.rounds}: {s:.1%} sparse (T={T})")
        acc, ev = self._evaluate(T)
        self.state["imp_round"] = r
        if r < cfg.rounds:
            self.state["phase"] = "prune"
        else:
            self.state["phase"] = "final" if cfg.method == "et" else self._after_ticket()
        return self._entry("prune", T, cfg.epochs, seconds, acc, ev, ladder=1 - keep / self.total)

    def _phase_eb_search(self) -> dict[str, Any]:
        cfg = self.cfg
        T = cfg.timesteps
        eb = self.state["eb"]
        epoch = eb["epochs"] + 1
        opt = self.trainer.new_optimizer(self.model)
        if self.opt_state is not None:
            opt.load_state_dict(self.opt_state)
        seconds = self._fit(1, T, ("eb",), f"Early-Bird search epoch {epoch} (T={T})", optimizer=opt,
                            first_epoch=epoch)
        t0 = time.perf_counter()
        self.opt_state = opt.state_dict()
        keep = self.total - int(round(self.total * cfg.sparsity_goal))
        mask = prune_masks(self.model, keep)
        previous = mask_distance(self.eb_history[-1], mask) if self.eb_history else None
        self.eb_history = (self.eb_history + [mask])[-cfg.eb_window:]
        window_max = max_pairwise_distance(self.eb_history) if len(self.eb_history) >= cfg.eb_window else None
        converged = early_bird_converged(self.eb_history, cfg.eb_window, cfg.eb_threshold)
        seconds += time.perf_counter() - t0
        acc, ev = self._evaluate(T)
        eb["epochs"] = epoch
        eb["max_distance"].append(window_max)
        eb["previous_distance"].append(previous)
        if converged or epoch >= cfg.eb_epochs_cap:
            eb["converged"] = converged
            eb["stop_epoch"] = epoch
            self.state["dense_accuracy"] = acc
            self.masks = mask
            self.eb_history = []
            self.opt_state = None
            self.state["phase"] = "final"
            self.say(f"   Early-Bird: {'masks settled' if converged else 'no convergence within the cap'} after "
                     f"epoch {epoch} (largest distance among the last {cfg.eb_window}: {window_max})")
        entry = self._entry("eb-search", T, 1, seconds, acc, ev, mask_distance_max=window_max,
                            mask_distance_previous=previous)
        entry["sparsity"] = 0.0  # the network is still dense while the mask is searched
        return entry

    def _phase_final(self) -> dict[str, Any]:
        cfg = self.cfg
        T = cfg.timesteps
        t0 = time.perf_counter()
        if cfg.method == "eb":
            assert self.init is not None
            self.model.load_state_dict(self.init)
            how = "from the initialisation"
        else:
            assert self.rewind is not None
            rewind_state(self.model, self.rewind)
            how = "from the rewound weights"
        apply_masks(self.model, self.masks)
        seconds = time.perf_counter() - t0
        seconds += self._fit(cfg.epochs, T, ("final",), f"final ticket at T={T} {how}")
        acc, ev = self._evaluate(T)
        self.state["phase"] = self._after_ticket()
        return self._entry("final", T, cfg.epochs, seconds, acc, ev)

    def _phase_binary(self) -> dict[str, Any]:
        cfg = self.cfg
        T = cfg.timesteps
        epochs = cfg.finetune_epochs
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.binary_lr)
        seconds = self._fit(epochs, T, ("binary",), f"binary fine-tune (alpha x sign, T={T})", binary=True,
                            optimizer=opt, freeze_bn=True)
        acc, ev = self._evaluate(T, binary=True)
        self.state["phase"] = "done"
        return self._entry("binary", T, epochs, seconds, acc, ev)

    # ------------------------------------------------------------------ export
    def _finish(self) -> SearchResult:
        cfg = self.cfg
        T = cfg.timesteps
        binary = cfg.binary
        t0 = time.perf_counter()
        final = materialize(self.model, self.masks, binary)
        example = torch.from_numpy(np.ascontiguousarray(self.x_test[:1]))
        masks = {k: v for k, v in (self.masks or {}).items()}
        with torch.no_grad():
            ticket = api.from_torch(final, example, timesteps=T, binarize=binary, masks=masks or None)
        api.save(ticket, self.out)
        ticket = api.load(self.out)
        result = api.run(ticket, self.x_test)
        correct = int((result.predictions() == self.y_test).sum())
        torch_acc = self.trainer.accuracy(final, self.x_test, self.y_test, T)
        export_seconds = time.perf_counter() - t0
        rounds = self.state["rounds"]
        ticket_rounds = [r for r in rounds if r["stage"] != "binary"]
        from ..format import layer_report

        log = {
            "schema": LOG_SCHEMA,
            "config": cfg.to_dict(),
            "data": {"name": self.data.name, "train": len(self.x_train), "test": len(self.x_test),
                     "input_shape": list(self.x_train.shape[1:]), "classes": self.data.classes,
                     "sha256": self.data.sha256 or None, "split_seed": cfg.split_seed},
            "method": cfg.method,
            "timesteps": T,
            "search_timesteps": self.state["search_timesteps"],
            "target_sparsity": cfg.sparsity_goal,
            "dense_accuracy": self.state["dense_accuracy"],
            "rounds": rounds,
            "et": self.state["et"],
            "eb": self.state["eb"],
            "ticket": {
                "path": str(self.out), "file_bytes": self.out.stat().st_size, "binary": binary,
                "sparsity": sparsity(self.masks, self.model), "weights": self.total,
                "kept_weights": int(sum(int(m.sum()) for m in (self.masks or {}).values())) if self.masks
                else self.total,
                "full_precision_accuracy": ticket_rounds[-1]["test_accuracy"] if ticket_rounds else None,
                "accuracy_torch": torch_acc,
                "accuracy_reference": correct / len(self.y_test),
                "correct_reference": correct, "test_samples": int(len(self.y_test)),
                "layers": [{k: row[k] for k in ("name", "shape", "density", "encoding", "bytes")}
                           for row in layer_report(ticket)],
            },
            "seconds": {
                "search": round(sum(r["seconds"] for r in ticket_rounds), 3),
                "binary": round(sum(r["seconds"] for r in rounds if r["stage"] == "binary"), 3),
                "eval": round(sum(r["eval_seconds"] for r in rounds), 3),
                "export": round(export_seconds, 3),
            },
            "resumed_after_round": self.resumed_from,
            "torch_threads": torch.get_num_threads(),
            "versions": _versions(),
        }
        atomic_write_bytes(self.log_path, (json.dumps(log, indent=2) + "\n").encode())
        if not self.keep:
            ckpt.remove(self.folder)
        dense = log["dense_accuracy"]
        self.say(f"   ticket: {log['ticket']['sparsity']:.1%} sparse, accuracy {correct / len(self.y_test):.4f} "
                 f"on the reference simulator ({correct}/{len(self.y_test)}; snnTorch {torch_acc:.4f}); dense "
                 + ("-" if dense is None else f"{dense:.4f}"))
        self.say(f"   wrote [bold]{self.out}[/] ({log['ticket']['file_bytes']:,} bytes) and {self.log_path}; search "
                 f"time {log['seconds']['search']:.1f} s")
        return SearchResult(ticket, self.out, self.log_path, log, final, dict(self.masks or {}))


def _versions() -> dict[str, str]:
    import snntorch

    from .. import __version__

    return {"slt_deploy": __version__, "torch": torch.__version__, "snntorch": snntorch.__version__}
