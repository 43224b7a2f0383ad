"""``slt search``: train a spiking network and search a lottery ticket, write .slt + JSON log.

Registered by :mod:`slt_deploy.cli` as ``app.command("search")(user_errors(search))``::

    slt search --method imp|et|eb [--binary] --data digits|PATH --rounds N --out t.slt
               [--arch mlp|conv|vgg16|resnet19|spikformer] [--epochs E] [--prune-fraction 0.25] [--target-sparsity S]
               [--timesteps T] [--seed S] [--device cpu|cuda|auto] [--amp auto|on|off] [--resume] [--json]

Data parallel: ``torchrun --nproc-per-node N -m slt_deploy search ...`` (rank 0 prints,
writes and reports; the other ranks stay silent, errors included).

Importing this module needs typer only; torch loads when the command runs.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ..errors import SltError

default_device = "cpu"  # a torch device type (slt run's "cpu" target is another thing)


def _rank() -> int:
    """This process's torchrun rank (0 without torchrun)."""
    from .distributed import launched_by_torchrun

    return int(os.environ.get("RANK", "0") or 0) if launched_by_torchrun() else 0


def _rank_zero_reports(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors are reported by rank 0 only (every rank fails with the same one, see World.on_main)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SltError:
            if _rank() != 0:
                raise typer.Exit(2) from None
            raise

    return wrapper


@_rank_zero_reports

def search(
    method: str = typer.Option("imp", "--method", help="Search method: imp (iterative magnitude pruning, late "
                               "rewinding), et (Early-Time ticket), eb (Early-Bird ticket) or lnp (Lyapunov Noise "
                               "Pruning of a heterogeneous recurrent SNN, before training)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the ticket (.slt); the JSON log goes next to "
                             "it (same name, .json) unless --log is given."),
    data: str = typer.Option("digits", "--data", help="'digits' (scikit-learn, embedded), a .npz file (x_train, "
                             "y_train, x_test, y_test, or x, y), a folder of such .npy files (memory-mapped), or an "
                             "image folder (one sub-folder per class; pixels/255)."),
    rounds: int = typer.Option(3, "--rounds", help="Pruning rounds: sparsity 1-(1-f)^rounds (EB: its default "
                               "target sparsity)."),
    binary: bool = typer.Option(False, "--binary", help="Binary kept weights: alpha x sign per output channel "
                                "(straight-through estimator)."),
    binary_from: str = typer.Option("ticket", "--binary-from", help="With --binary: 'ticket' fine-tunes the "
                                    "finished full-precision ticket, 'scratch' trains binary weights throughout."),
    arch: str = typer.Option("mlp", "--arch", help="Network: mlp (Linear-LIF-Linear-LIF), conv (two Conv-BN-LIF-"
                             "MaxPool blocks and a Linear-LIF readout), or the ECCV 2022 networks vgg16 / resnet19 "
                             "(CIFAR layout, SpikingJelly-style LIF tau=4/3), or spikformer (ConvPEP 2x2 patches -> "
                             "tokens, spiking self-attention + MLP block, mean over tokens; --hidden sets the "
                             "embedding, default 32); BatchNorm is folded at export."),
    token_keep: float = typer.Option(1.0, "--token-keep", help="spikformer: fraction of the tokens kept after the "
                                     "patch embedding (the patches of largest mean input intensity on the training "
                                     "set; MultiSp's patch-number sparsity)."),
    width: float = typer.Option(1.0, "--width", help="vgg16/resnet19: channel-width multiplier (1 = the paper's "
                                "networks)."),
    encoding: str = typer.Option("direct", "--encoding", help="'direct' (the sample is the input at every step) or "
                                 "'spikes' (samples are (T, *features): one frame, e.g. binned events, per step)."),
    epochs: int = typer.Option(8, "--epochs", help="Training epochs of the dense run, of every round and of the "
                               "final ticket."),
    prune_fraction: float = typer.Option(0.25, "--prune-fraction", help="Fraction of the remaining weights "
                                         "pruned per round (global magnitude)."),
    target_sparsity: float | None = typer.Option(None, "--target-sparsity", help="EB only: final sparsity in "
                                                 "(0, 1) (default 1-(1-f)^rounds)."),
    timesteps: int = typer.Option(8, "--timesteps", "-T", help="Time steps per inference of the ticket."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initialisation and the shuffling."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the 80/20 train/test split (digits, or data "
                                   "given as x, y)."),
    hidden: int = typer.Option(128, "--hidden", help="MLP hidden neurons."),
    channels: str = typer.Option("32,64", "--channels", help="Conv net channels of the two blocks, e.g. 32,64."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate (default 5e-3 for mlp, 2e-3 for conv)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Training batch size (global: split evenly over the "
                                   "torchrun processes)."),
    rewind_epoch: int = typer.Option(1, "--rewind-epoch", help="Late rewinding: weights after this many dense "
                                     "epochs (0: the initialisation)."),
    binary_epochs: int | None = typer.Option(None, "--binary-epochs", help="Epochs of the binary fine-tune "
                                             "(default: --epochs)."),
    binary_lr: float = typer.Option(1e-3, "--binary-lr", help="Adam learning rate of the binary fine-tune."),
    binary_scope: str = typer.Option("all", "--binary-scope", help="Which weights --binary makes alpha x sign: "
                                     "'all', or 'convpep' (spikformer: only the patch embedding, MultiSp's binary "
                                     "ConvPEP; the blocks keep sparse float32 weights)."),
    binary_keep: str = typer.Option("last", "--binary-keep", help="Which epoch of the binary fine-tune to keep: "
                                    "'last', or 'best-train' (best training-set accuracy; the test set is never "
                                    "used)."),
    et_threshold: float = typer.Option(0.6, "--et-threshold", help="ET: smallest T' whose normalised KL is below "
                                       "this."),
    eb_threshold: float = typer.Option(0.02, "--eb-threshold", help="EB: stop when the last masks differ in less "
                                       "than this fraction of entries."),
    eb_window: int = typer.Option(5, "--eb-window", help="EB: how many successive masks must agree."),
    eb_max_epochs: int | None = typer.Option(None, "--eb-max-epochs", help="EB: most search epochs (default: "
                                             "the larger of --epochs and --eb-window)."),
    log: Path | None = typer.Option(None, "--log", help="Where to write the JSON log (default: --out with .json)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted search from its last completed "
                                "round (kept in OUT.search/)."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep OUT.search/ (one checkpoint per "
                                          "round) after the search succeeds."),
    threads: int = typer.Option(1, "--threads", help="PyTorch CPU threads per process (1 is fastest for these small "
                                "nets)."),
    device: str = typer.Option(default_device, "--device", help="cpu, cuda (one GPU per torchrun process) or auto "
                               "(cuda when available)."),
    amp: str = typer.Option("auto", "--amp", help="Mixed-precision training: auto (on CUDA for vgg16/resnet19), on, "
                            "off. Evaluation and the exported ticket are always float32."),
    check_samples: int | None = typer.Option(None, "--check-samples", help="Test samples the packed ticket runs on "
                                             "with the reference simulator (default: all; 16 for vgg16/resnet19)."),
    workers: int | None = typer.Option(None, "--workers", help="Data-loading processes per search process for "
                                       "streamed data (default: 2 for image folders, 0 otherwise)."),
    as_json: bool = typer.Option(False, "--json", help="Print the search log as JSON (no progress output)."),
    keep_synapses: float = typer.Option(0.5, "--keep-synapses", help="lnp: fraction of the recurrent synapses "
                                        "step 1 (noise-driven sampling) keeps on average."),
    remove_neurons: float = typer.Option(0.5, "--remove-neurons", help="lnp: fraction of the neurons step 2 "
                                         "removes (lowest betweenness centrality)."),
    trials: int = typer.Option(12, "--trials", help="lnp: Optuna (TPE) trials of step 4, the time-constant search."),
    clusters: int = typer.Option(1, "--clusters", help="lnp: 1 builds an HRSNN, more a clustered small-world "
                                 "CHRSNN with that many clusters."),
    ann_twin: bool = typer.Option(False, "--ann-twin", help="Also train the ReLU ANN of the same architecture on the "
                                  "same data and save it next to the ticket (OUT with .ann.safetensors), the "
                                  "measured baseline of slt energy --ann."),
) -> None:
    """Train an SNN and search a (binary) lottery ticket: IMP, Early-Time or Early-Bird; writes .slt + JSON log.

    Data parallel with torchrun: torchrun --nproc-per-node N -m slt_deploy search ...
    """
    for flag, path in (("--out", out), ("--log", log)):
        if path is not None and (not path.name or path.is_dir()):
            raise SltError(f"{flag} '{path}' is a folder; give a file path (e.g. ticket.slt)")
    if method == "lnp":
        _lnp(out, log, data, binary, seed, split_seed, hidden, keep_synapses, remove_neurons, trials, clusters,
             resume, keep_checkpoints, as_json)
        return
    rank = _rank()
    from .config import SearchConfig, SltSearchError

    try:
        widths = tuple(int(c) for c in channels.replace("x", ",").split(",") if c.strip())
    except ValueError:
        widths = ()
    if len(widths) != 2:
        raise SltSearchError(f"--channels {channels!r}: expected two comma-separated integers, e.g. 32,64")
    config = SearchConfig(
        method=method, data=data, arch=arch, rounds=rounds, epochs=epochs, prune_fraction=prune_fraction,
        target_sparsity=target_sparsity, timesteps=timesteps, binary=binary, binary_from=binary_from,
        binary_epochs=binary_epochs, binary_lr=binary_lr, binary_scope=binary_scope, binary_keep=binary_keep,
        seed=seed, split_seed=split_seed,
        hidden=hidden,
        token_keep=token_keep,
        channels=widths,
        lr=lr, batch_size=batch_size, rewind_epoch=rewind_epoch, et_threshold=et_threshold,
        eb_threshold=eb_threshold, eb_window=eb_window, eb_max_epochs=eb_max_epochs, width=width, encoding=encoding,
    )
    if binary_from != "ticket" and not binary:
        raise SltSearchError("--binary-from applies to binary tickets; add --binary")
    if (binary_scope != "all" or binary_keep != "last") and not binary:
        raise SltSearchError("--binary-scope and --binary-keep apply to binary tickets; add --binary")
    if ann_twin and (arch not in ("mlp", "conv") or encoding != "direct"):
        raise SltSearchError("--ann-twin trains the ReLU twin of --arch mlp or conv on directly encoded data; "
                             f"it has no twin for --arch {arch} --encoding {encoding}")
    try:
        import snntorch  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise SltError("slt search trains networks and needs PyTorch and snnTorch: "
                       "pip install 'slt-deploy[torch]'") from None
    from ..cli.io import console, emit_json
    from . import checkpoint
    from .engine import run_search

    previous = signal.signal(signal.SIGTERM, _terminated) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        result = run_search(config, out, log_path=log, console=None if as_json or rank else console, resume=resume,
                            keep_checkpoints=keep_checkpoints, threads=threads, device=device, amp=amp,
                            workers=workers, check_samples=check_samples)
    except KeyboardInterrupt as exc:
        if rank == 0:
            how = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
            folder = checkpoint.checkpoint_dir(out)
            done = len(checkpoint.completed_rounds(folder))
            if done:
                print(f"slt: {how}: {done} completed round(s) kept in {folder}; rerun the same command with "
                      "--resume to continue", file=sys.stderr)
            else:
                print(f"slt: {how} before the first round completed; nothing was kept", file=sys.stderr)
        raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if ann_twin and rank == 0:  # rank 0 holds the ticket; the twin trains there, in one process
        from .ann_twin import train_ann_twin

        result.log["ann_twin"] = train_ann_twin(config, result.ticket, out, console=None if as_json else console)
    if as_json and rank == 0:
        emit_json(result.log)


def _lnp(out: Path, log: Path | None, data: str, binary: bool, seed: int, split_seed: int, hidden: int,
         keep: float, remove: float, trials: int, clusters: int, resume: bool, keep_checkpoints: bool,
         as_json: bool) -> None:
    """``--method lnp``: Lyapunov Noise Pruning of a heterogeneous recurrent SNN (slt_deploy.lnp)."""
    from .config import SltSearchError

    if data != "digits":
        raise SltSearchError("--method lnp trains on its own offline tasks (sequential digits, Lorenz-63, "
                             f"Mackey-Glass); --data {data!r} does not apply")
    if binary:
        raise SltSearchError("--method lnp keeps float32 recurrent weights; --binary does not apply")
    for flag, value in (("--keep-synapses", keep), ("--remove-neurons", remove)):
        if not 0 < value < 1:
            raise SltSearchError(f"{flag} must lie in (0, 1), got {value}")
    for flag, value, low, high in (("--trials", trials, 1, 10_000), ("--clusters", clusters, 1, max(hidden, 1)),
                                   ("--hidden", hidden, 8, 20_000), ("--seed", seed, 0, 2**63 - 1),
                                   ("--split-seed", split_seed, 0, 2**63 - 1)):
        if not low <= value <= high:  # 2^63 trials ran for ever; the recurrent matrix is --hidden squared
            raise SltSearchError(f"{flag} must be an integer in [{low}, {high:,}] for --method lnp, got {value}")
    from ..cli.io import console, emit_json
    from ..lnp.run import LnpConfig, run_lnp

    cfg = LnpConfig(seed=seed, neurons=hidden, keep=keep, remove=remove, trials=trials, clusters=clusters,
                    split_seed=split_seed)
    result = run_lnp(cfg, out, log, resume=resume, keep_checkpoints=keep_checkpoints,
                     say=None if as_json else console.print)
    if as_json:
        emit_json(result)
    else:
        r = result["result"]
        console.print(f"LNP ticket: {r['neurons']} neurons, {r['synapses']} synapses (sparsity "
                      f"{r['synapse_sparsity']:.1%} synapses, {r['neuron_sparsity']:.1%} neurons), digits "
                      f"{r['digits_accuracy']:.1%}, NRMSE Lorenz {r['nrmse']['lorenz63']:.3f} / Mackey-Glass "
                      f"{r['nrmse']['mackey_glass']:.3f} -> {out}")


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, torchrun, `kill`): stop like Ctrl-C, keeping the completed rounds."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated()
