"""The interface between a search method and the engine that runs it.

A method is a sequence of **phases**; each phase is one checkpointed round of the search
log. The engine (:mod:`slt_deploy.search.engine`) owns everything else: the data, the
network, the process group, checkpoints and ``--resume``, the log, progress output,
throughput, the binary fine-tune and the export to ``.slt``. A method never touches
``torch.distributed``; it reaches the other processes only through the context, whose
rules make every method data parallel::

    class MyMethod(SearchMethod):
        name, title = "mine", "My ticket"

        def start(self, ctx):                     # a fresh search (not called on resume)
            ctx.state["mine"] = {"step": 0}       # JSON, checkpointed, ends up in the log
            ctx.saved["init"] = ctx.snapshot()    # tensors, checkpointed
            return "search"                       # the first phase

        def phase_search(self, ctx):              # state["phase"] == "search"
            seconds = ctx.fit(ctx.cfg.epochs, ctx.cfg.timesteps, ("search",), "training")
            ctx.masks = ctx.share_masks(lambda: my_rule(ctx.model))   # rank 0 decides, all ranks get it
            acc, ev = ctx.evaluate(ctx.cfg.timesteps)
            ctx.state["phase"] = ctx.after_ticket()                   # "binary" or "done"
            return ctx.entry("search", ctx.cfg.timesteps, ctx.cfg.epochs, seconds, acc, ev)

    register_method("mine", MyMethod)             # slt_deploy.search.methods

The context (:class:`SearchContext`) offers:

- ``cfg``, ``model``, ``masks`` (``{weight name: bool tensor}`` or None), ``total`` (prunable
  weights), ``x_train``/``y_train`` (this process's view of the data), ``trainer``,
  ``scratch`` (binary weights throughout), ``world`` (read-only: rank, size);
- ``state`` (JSON dict) and ``saved`` (tensors, lists/dicts of tensors, optimiser state
  dicts): both are checkpointed after every phase and restored by ``--resume``;
- ``fit(epochs, T, key, description, ...)``: data-parallel training (the global batch split
  over the processes, the shuffle seeded by ``(seed, key, epoch)``), returns seconds;
- ``evaluate(T)``: test accuracy (the test set split over the processes), seconds;
- ``decide(fn)``: ``fn()`` runs on rank 0 only, its JSON value is returned on every rank;
- ``share_masks(fn)`` / ``magnitude_mask(keep, among)``: masks computed once on rank 0,
  broadcast, and checked identical on every rank by sha256;
- ``snapshot()``, ``capture_rewind(epoch)``, ``entry(...)``, ``say(text)``, ``after_ticket()``.

After every phase the engine also hashes every rank's masks and weights; a difference stops
the search.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import torch


class SearchContext(Protocol):
    """What the engine gives a method (see the module docstring)."""

    cfg: Any
    model: torch.nn.Module
    masks: dict[str, torch.Tensor] | None
    state: dict[str, Any]
    saved: dict[str, Any]
    total: int
    trainer: Any
    x_train: Any
    y_train: Any
    scratch: bool

    def fit(self, epochs: int, timesteps: int, key: tuple[Any, ...], description: str, binary: bool | None = None,
            **kw: Any) -> float: ...
    def evaluate(self, timesteps: int, binary: bool | None = None) -> tuple[float, float]: ...
    def binary_spec(self, on: bool) -> bool | frozenset[str]: ...
    def decide(self, fn: Callable[[], Any]) -> Any: ...
    def share_masks(self, fn: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]: ...
    def magnitude_mask(self, keep: int, among: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]: ...
    def snapshot(self) -> dict[str, torch.Tensor]: ...
    def capture_rewind(self, epoch: int) -> None: ...
    def entry(self, stage: str, timesteps: int, epochs: int, seconds: float, acc: float | None,
              eval_seconds: float, **extra: Any) -> dict[str, Any]: ...
    def say(self, text: str) -> None: ...
    def after_ticket(self) -> str: ...


class SearchMethod:
    """Base class of the search methods; subclasses add ``start`` and ``phase_<name>`` methods.

    The ``binary`` phase (the straight-through fine-tune of a finished ticket,
    ``--binary --binary-from ticket``) is shared by every method: end the ticket's last
    phase with ``ctx.state["phase"] = ctx.after_ticket()``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    extendable: ClassVar[bool] = False  # a finished search can grow: ``extend`` continues its last pruning round

    def extend(self, ctx: SearchContext) -> str:
        """Continue a finished search from its last pruning round (restored) with more ``cfg.rounds``;
        return the phase to run next. Only called when ``extendable``."""
        raise NotImplementedError

    def remaining_phases(self, ctx: SearchContext) -> int | None:
        """How many phases are still to run (for the overall ETA), or None when unknown."""
        return None

    def start(self, ctx: SearchContext) -> str:
        """Set up a fresh search; return the first phase."""
        raise NotImplementedError

    def phase(self, name: str) -> Callable[[SearchContext], dict[str, Any]]:
        fn = getattr(self, "phase_" + name.replace("-", "_"), None)
        if fn is None:
            raise RuntimeError(f"search method {self.name!r} has no phase {name!r}")
        return fn

    def log(self, ctx: SearchContext) -> dict[str, Any]:
        """Extra entries for the final log (default: none)."""
        return {}

    def phase_binary(self, ctx: SearchContext) -> dict[str, Any]:
        cfg = ctx.cfg
        T = cfg.timesteps
        epochs = cfg.finetune_epochs
        opt = torch.optim.Adam(ctx.model.parameters(), lr=cfg.binary_lr)
        best: dict[str, Any] = {"accuracy": -1.0, "epoch": epochs, "state": None}

        def keep_best(epoch: int) -> None:  # --binary-keep best-train: training-set accuracy, never the test set
            acc = ctx.trainer.accuracy(ctx.model, ctx.x_train, ctx.y_train, T, ctx.masks, ctx.binary_spec(True))
            if acc > best["accuracy"]:
                state = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
                best.update(accuracy=acc, epoch=epoch, state=state)

        select = cfg.binary_keep == "best-train"
        seconds = ctx.fit(epochs, T, ("binary",), f"binary fine-tune (alpha x sign, T={T})", binary=True,
                          optimizer=opt, freeze_bn=True, on_epoch=keep_best if select else None)
        extra: dict[str, Any] = {}
        if select and best["state"] is not None:
            ctx.model.load_state_dict(best["state"])
            extra = {"kept_epoch": best["epoch"], "train_accuracy": best["accuracy"]}
        acc, ev = ctx.evaluate(T, binary=True)
        ctx.state["phase"] = "done"
        return ctx.entry("binary", T, epochs, seconds, acc, ev, **extra)
