"""``slt search --method lnp``: build an HRSNN, prune it with LNP, train its readouts, write the ticket.

Stages, each checkpointed in ``OUT.search/`` (``lnp-NN-<stage>.npz``: the network's arrays and
the JSON state; written atomically) so that ``--resume`` continues after the last completed
one: ``build`` → ``noise`` (LNP 1) → ``neurons`` (LNP 2) → ``delocalise`` (LNP 3) → ``taus``
(LNP 4) → ``train`` (the readouts of every task; the digits ticket written to ``OUT``, the log
to ``OUT`` with ``.json``). Resuming with other settings is refused naming the option.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import SltError
from ..search.checkpoint import make_folder
from . import hrsnn, prune, tasks
from .hrsnn import HRSNN

STAGES = ("build", "noise", "neurons", "delocalise", "taus", "train")
SCHEMA = "slt-lnp-log/1"


@dataclass(frozen=True)
class LnpConfig:
    """The settings of one LNP search (the CLI flag of each is named in errors)."""

    seed: int = 0
    neurons: int = 200       # --hidden
    keep: float = 0.5        # synapse keep fraction of LNP step 1
    remove: float = 0.5      # neuron fraction removed in LNP step 2
    trials: int = 12         # Optuna trials of LNP step 4 (--trials)
    clusters: int = 1        # 1: HRSNN, > 1: CHRSNN
    split_seed: int = 0


FLAGS = {"seed": "--seed", "neurons": "--hidden", "keep": "--keep-synapses", "remove": "--remove-neurons",
         "trials": "--trials",
         "clusters": "--clusters", "split_seed": "--split-seed"}


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".search")


def _save(folder: Path, index: int, net: HRSNN, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    np.savez(buf, w_in=net.w_in, w_rec=net.w_rec, beta=net.beta, threshold=net.threshold, quantile=net.quantile,
             meta=np.frombuffer(json.dumps({"net": [net.tau_shape, net.tau_scale, list(net.tau_bounds)],
                                            "state": state}).encode(), np.uint8))
    make_folder(folder)
    atomic_write_bytes(folder / f"lnp-{index:02d}-{STAGES[index]}.npz", buf.getvalue())


def _load(path: Path) -> tuple[HRSNN, dict[str, Any]]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        shape, scale, bounds = meta["net"]
        net = HRSNN(z["w_in"], z["w_rec"], z["beta"], z["threshold"], z["quantile"], shape, scale, tuple(bounds))
    return net, meta["state"]


def _resume(folder: Path, cfg: LnpConfig) -> tuple[int, HRSNN | None, dict[str, Any]]:
    done = sorted(folder.glob("lnp-*.npz")) if folder.is_dir() else []
    if not done:
        return 0, None, {}
    net, state = _load(done[-1])
    for key, value in asdict(cfg).items():
        if state["config"].get(key) != value:
            raise SltError(f"--resume: {FLAGS[key]} was {state['config'].get(key)!r} in the interrupted search, "
                           f"now {value!r}; rerun with the same options (or without --resume)")
    return len(done), net, state


def _step(index: int, net: HRSNN | None, cfg: LnpConfig, state: dict[str, Any]) -> HRSNN:
    """Run stage ``index`` (``STAGES``) on ``net``; adds its entry to ``state["stages"]``."""
    t0 = time.perf_counter()
    entry: dict[str, Any] = {"stage": STAGES[index]}
    if index == 0:
        net = hrsnn.build(cfg.neurons, 8, cfg.seed, clusters=cfg.clusters)
    elif index == 1:
        net = prune.noise_sample(net, cfg.seed, cfg.keep)  # type: ignore[arg-type]
    elif index == 2:
        net, _ = prune.remove_central_least(net, cfg.seed, cfg.remove)  # type: ignore[arg-type]
    elif index == 3:
        net = prune.delocalise(net, cfg.seed)  # type: ignore[arg-type]
    elif index == 4:
        net, entry["tau_search"] = prune.tune_taus(net, cfg.seed, cfg.trials)  # type: ignore[arg-type]
    assert net is not None
    entry.update(neurons=net.n, synapses=net.synapses, lambda_max=float(hrsnn.lyapunov(net, cfg.seed)[0]),
                 seconds=round(time.perf_counter() - t0, 3))
    state["stages"].append(entry)
    return net


def run_lnp(cfg: LnpConfig, out: Path, log_path: Path | None = None, resume: bool = False,
            keep_checkpoints: bool = False, say: Any = None) -> dict[str, Any]:
    """Run (or resume) the search; write the digits ticket to ``out`` and return the log."""
    from .readout import score

    folder = checkpoint_dir(out)
    start, net, state = _resume(folder, cfg) if resume else (0, None, {})
    if not resume:
        _remove_own(folder)
    state = state or {"schema": SCHEMA, "config": asdict(cfg), "stages": []}
    for index in range(start, len(STAGES) - 1):
        net = _step(index, net, cfg, state)
        _save(folder, index, net, state)
        if say:
            say(f"LNP {STAGES[index]}: {net.n} neurons, {net.synapses} synapses, "
                f"lambda_max {state['stages'][-1]['lambda_max']:.4f}")
    assert net is not None
    dense = state["stages"][0]
    scores = score(net, [tasks.lorenz(), tasks.mackey_glass()], cfg.split_seed)
    import slt_deploy

    slt_deploy.save(scores.ticket, out)
    state["result"] = {
        "neurons": net.n, "synapses": net.synapses,
        "neuron_sparsity": 1 - net.n / dense["neurons"], "synapse_sparsity": 1 - net.synapses / dense["synapses"],
        "lambda_max": state["stages"][-1]["lambda_max"], "digits_accuracy": scores.accuracy,
        "nrmse": scores.nrmse, "slt_bytes": scores.slt_bytes, "energy_pj_per_inference": scores.energy_pj,
        "tau": {"shape": net.tau_shape, "scale": net.tau_scale},
    }
    log_path = log_path or out.with_suffix(".json")
    atomic_write_bytes(log_path, (json.dumps(state, indent=2) + "\n").encode())
    if not keep_checkpoints:
        _remove_own(folder)
    return state


def _remove_own(folder: Path) -> None:
    """Delete the stage files this search writes (``lnp-NN-<stage>.npz``), then the folder if that
    left it empty: a file someone else put in ``OUT.search/`` is never removed."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for index, stage in enumerate(STAGES):
        with contextlib.suppress(FileNotFoundError):
            (folder / f"lnp-{index:02d}-{stage}.npz").unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()
