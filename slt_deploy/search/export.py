"""The end of a search: export the ticket, check it on the reference simulator, write the log.

Rank 0 only (the other data-parallel ranks return their copy of the network). The trained
network is materialised with its effective weights (exactly ``α·sign`` for binary
tickets), measured in torch on the whole test set, imported with
:func:`slt_deploy.from_torch` (BatchNorm folded), saved atomically, loaded back and run
on the reference simulator for ``check_samples`` test samples.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import api
from ..atomic import atomic_write_bytes
from ..ir.graph import Ticket
from . import checkpoint as ckpt
from .trainer import Masks, materialize, sparsity

LOG_SCHEMA = "slt-search-log/1"


@dataclass
class SearchResult:
    """What :func:`run_search` produced: the ticket (also saved at ``path``), the log (also
    at ``log_path``), the trained network with its effective weights, and the masks.

    On data-parallel ranks other than 0 (which write nothing) ``ticket`` is None, ``log``
    empty, and ``model`` the rank's own copy of the trained network."""

    ticket: Ticket | None
    path: Path
    log_path: Path
    log: dict[str, Any]
    model: torch.nn.Module
    masks: Masks


def reference_correct(search: Any, ticket: Ticket) -> int:
    """Correct predictions of the packed ticket on the reference simulator for the first
    ``check_samples`` test samples, chunk by chunk."""
    correct = 0
    n = search.check_samples
    for start in range(0, n, 1024):
        x = np.asarray(search.x_test[start:min(start + 1024, n)])
        if search.cfg.encoding == "spikes":
            x = np.moveaxis(x, 1, 0)
        pred = api.run(ticket, x).predictions()
        correct += int((pred == search.y_test[start:start + len(pred)]).sum())
    return correct


def finish(search: Any) -> SearchResult:
    """Rank 0: export the ticket, check it on the reference simulator, write the log; the other ranks return."""
    if not search.world.main:
        return SearchResult(None, search.out, search.log_path, {}, search.model, dict(search.masks or {}))
    t0 = time.perf_counter()
    final, ticket, masks, torch_acc = _export_ticket(search)
    correct = reference_correct(search, ticket)
    log = _search_log(search, ticket, masks, torch_acc, correct, time.perf_counter() - t0)
    atomic_write_bytes(search.log_path, (json.dumps(log, indent=2) + "\n").encode())
    _tidy_checkpoints(search)
    dense = log["dense_accuracy"]
    search.say(f"   ticket: {log['ticket']['sparsity']:.1%} sparse, accuracy {correct / search.check_samples:.4f} "
             f"on the reference simulator ({correct}/{search.check_samples}"
             + ("" if search.check_samples == len(search.y_test) else f" of {len(search.y_test)} test samples")
             + f"; torch {torch_acc:.4f}); dense " + ("-" if dense is None else f"{dense:.4f}"))
    search.say(f"   wrote [bold]{search.out}[/] ({log['ticket']['file_bytes']:,} bytes) and {search.log_path}; search "
             f"time {log['seconds']['search']:.1f} s")
    return SearchResult(ticket, search.out, search.log_path, log, final, masks)


def _export_ticket(search: Any) -> tuple[Any, Any, dict[str, Any], float]:
    """The trained, masked model packed to ``search.out`` and read back: (model, ticket, masks, torch accuracy)."""
    cfg = search.cfg
    final = materialize(search.model, search.masks, search.binary_spec(cfg.binary))
    torch_acc = search.trainer.accuracy(final, search.x_test, search.y_test, cfg.timesteps, shard=False)
    final = final.cpu()
    first = np.asarray(search.x_test[:1])
    example = torch.from_numpy(np.ascontiguousarray(first[:, 0] if cfg.encoding == "spikes" else first))
    masks = {k: v.cpu() for k, v in (search.masks or {}).items()}
    with torch.no_grad():
        binarize = search.binary_spec(cfg.binary)  # True, False or the ConvPEP's weight names
        ticket = api.from_torch(final, example, timesteps=cfg.timesteps, binarize=binarize, masks=masks or None,
                                encoding=cfg.encoding)
    api.save(ticket, search.out)
    return final, api.load(search.out), masks, torch_acc


def _search_log(search: Any, ticket: Any, masks: dict[str, Any], torch_acc: float, correct: int,
                export_seconds: float) -> dict[str, Any]:
    """The JSON log (schema ``LOG_SCHEMA``): config, data, rounds, the ticket's figures, timings, versions."""
    from ..format import layer_report

    cfg = search.cfg
    rounds = search.state["rounds"]
    ticket_rounds = [r for r in rounds if r["stage"] != "binary"]
    trained = [r["throughput"] for r in rounds if r["throughput"]["samples_per_s"] is not None]
    return {
        "schema": LOG_SCHEMA,
        "config": cfg.to_dict(),
        "data": {"name": search.data.name, "train": len(search.x_train), "test": len(search.x_test),
                 "input_shape": list(search.x_train.shape[1:]), "classes": search.data.classes,
                 "sha256": search.data.sha256 or None, "split_seed": cfg.split_seed,
                 **({"class_names": list(search.data.class_names)} if search.data.class_names else {})},
        "method": cfg.method,
        "timesteps": cfg.timesteps,
        "search_timesteps": search.state["search_timesteps"],
        "target_sparsity": cfg.sparsity_goal,
        "dense_accuracy": search.state["dense_accuracy"],
        "rounds": rounds,
        "et": search.state.get("et"),
        "eb": search.state.get("eb"),
        **search.method.log(search),
        "ticket": {
            "path": str(search.out), "file_bytes": search.out.stat().st_size, "binary": cfg.binary,
            "sparsity": sparsity(search.masks, search.model), "weights": search.total,
            "kept_weights": int(sum(int(m.sum()) for m in masks.values())) if masks else search.total,
            "full_precision_accuracy": ticket_rounds[-1]["test_accuracy"] if ticket_rounds else None,
            "accuracy_torch": torch_acc,
            "accuracy_reference": correct / search.check_samples,
            "correct_reference": correct, "reference_samples": search.check_samples,
            "test_samples": int(len(search.y_test)),
            "layers": [{k: row[k] for k in ("name", "shape", "density", "encoding", "bytes")}
                       for row in layer_report(ticket)],
        },
        "seconds": {
            "search": round(sum(r["seconds"] for r in ticket_rounds), 3),
            "binary": round(sum(r["seconds"] for r in rounds if r["stage"] == "binary"), 3),
            "eval": round(sum(r["eval_seconds"] for r in rounds), 3),
            "export": round(export_seconds, 3),
        },
        "distributed": {**search.world.describe(), "amp": None if search.amp is None else
                        str(search.amp).removeprefix("torch."), "data_workers": search.workers,
                        "samples_per_s": _median([t["samples_per_s"] for t in trained]),
                        "scaling_efficiency": _median([t["scaling_efficiency"] for t in trained
                                                       if t["scaling_efficiency"] is not None])},
        "resumed_after_round": search.resumed_from,
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
    }


def _tidy_checkpoints(search: Any) -> None:
    """Remove OUT.search/ after success, unless kept (--keep-checkpoints) or needed to extend the rounds."""
    if search.keep:
        return
    last_prune = [r["round"] for r in search.state["rounds"] if r["stage"] == "prune"]
    if last_prune and search.method.extendable:
        ckpt.keep_for_extension(search.folder, last_prune[-1])  # so --resume --rounds N can grow the ladder
    else:
        ckpt.remove(search.folder)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def _versions() -> dict[str, str]:
    import snntorch

    from .. import __version__

    return {"slt_deploy": __version__, "torch": torch.__version__, "snntorch": snntorch.__version__}
