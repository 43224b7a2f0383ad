"""The lottery-ticket methods of Kim et al. (ECCV 2022): IMP, Early-Time and Early-Bird.

Phases (each one checkpointed round; see docs/search.md for the equations):

    imp  dense → prune 1 … R                       → [binary fine-tune]
    et   dense (warm-up epoch at T, pick T', rest at T') → prune 1 … R at T' → final at T → [binary]
    eb   eb-search epoch 1, 2, … (until the masks settle) → final (from the init, with the mask) → [binary]

Decisions that must be the same on every process are the context's: the global magnitude
mask (``ctx.magnitude_mask``: computed once on rank 0 and broadcast), ET's KL rule and EB's
stopping rule (``ctx.decide``: evaluated on rank 0, the result broadcast).
"""

from __future__ import annotations

import time
from typing import Any

from ..rules import (
    early_bird_converged,
    ladder_keep_counts,
    mask_distance,
    max_pairwise_distance,
    normalised_kl,
    pick_early_timestep,
)
from ..trainer import apply_masks, rewind_state, sparsity
from .base import SearchContext, SearchMethod


class IMP(SearchMethod):
    """Iterative magnitude pruning with late rewinding."""

    name = "imp"
    title = "IMP"
    final_from_init = False  # the final phase retrains from the rewound weights (ET) or the initialisation (EB)
    extendable = True

    def extend(self, ctx: SearchContext) -> str:
        return "prune"

    def remaining_phases(self, ctx: SearchContext) -> int | None:
        phase = ctx.state["phase"]
        after = self._after_phases(ctx)
        if phase == "dense":
            return 1 + ctx.cfg.rounds + after
        if phase == "prune":
            return ctx.cfg.rounds - ctx.state["imp_round"] + after
        return {"final": 1 + int(ctx.after_ticket() == "binary"), "binary": 1}.get(phase, 0)

    def _after_phases(self, ctx: SearchContext) -> int:
        """Phases after the last pruning round: the binary fine-tune, if any."""
        return int(ctx.after_ticket() == "binary")

    def start(self, ctx: SearchContext) -> str:
        ctx.state["imp_round"] = 0
        ctx.state["search_timesteps"] = ctx.cfg.timesteps
        if ctx.cfg.rewind_epoch == 0:
            ctx.saved["rewind"] = ctx.snapshot()
        return "dense"

    def phase_dense(self, ctx: SearchContext) -> dict[str, Any]:
        cfg = ctx.cfg
        T = cfg.timesteps
        seconds = ctx.fit(cfg.epochs, T, ("dense",), f"dense training (T={T})", on_epoch=ctx.capture_rewind)
        acc, ev = ctx.evaluate(T)
        ctx.state["dense_accuracy"] = acc
        ctx.state["phase"] = "prune"
        return ctx.entry("dense", T, cfg.epochs, seconds, acc, ev, test_accuracy_full_T=acc)

    def after_last_round(self, ctx: SearchContext) -> str:
        return ctx.after_ticket()

    def phase_prune(self, ctx: SearchContext) -> dict[str, Any]:
        cfg = ctx.cfg
        r = ctx.state["imp_round"] + 1
        T = ctx.state["search_timesteps"]
        t0 = time.perf_counter()
        keep = ladder_keep_counts(ctx.total, cfg.rounds, cfg.prune_fraction)[r]
        ctx.masks = ctx.magnitude_mask(keep, ctx.masks)
        rewind_state(ctx.model, ctx.saved["rewind"])
        apply_masks(ctx.model, ctx.masks)
        seconds = time.perf_counter() - t0
        s = sparsity(ctx.masks, ctx.model)
        seconds += ctx.fit(cfg.epochs, T, ("prune", r), f"round {r}/{cfg.rounds}: {s:.1%} sparse (T={T})")
        acc, ev = ctx.evaluate(T)
        ctx.state["imp_round"] = r
        ctx.state["phase"] = "prune" if r < cfg.rounds else self.after_last_round(ctx)
        return ctx.entry("prune", T, cfg.epochs, seconds, acc, ev, ladder=1 - keep / ctx.total)

    def phase_final(self, ctx: SearchContext) -> dict[str, Any]:
        """Retrain the last mask at the full T: from the rewound weights (ET), or from the
        initialisation (EB)."""
        cfg = ctx.cfg
        T = cfg.timesteps
        t0 = time.perf_counter()
        if self.final_from_init:
            ctx.model.load_state_dict(ctx.saved["init"])
            how = "from the initialisation"
        else:
            rewind_state(ctx.model, ctx.saved["rewind"])
            how = "from the rewound weights"
        apply_masks(ctx.model, ctx.masks)
        seconds = time.perf_counter() - t0
        seconds += ctx.fit(cfg.epochs, T, ("final",), f"final ticket at T={T} {how}")
        acc, ev = ctx.evaluate(T)
        ctx.state["phase"] = ctx.after_ticket()
        return ctx.entry("final", T, cfg.epochs, seconds, acc, ev)


class EarlyTime(IMP):
    """IMP at the smaller T' the KL rule picks after one epoch at T; the final ticket is trained at T."""

    name = "et"
    title = "Early-Time"

    def start(self, ctx: SearchContext) -> str:
        first = super().start(ctx)
        ctx.state["search_timesteps"] = None
        return first

    def after_last_round(self, ctx: SearchContext) -> str:
        return "final"

    def _after_phases(self, ctx: SearchContext) -> int:
        return 1 + int(ctx.after_ticket() == "binary")  # the final ticket at the full T, then the fine-tune

    def phase_dense(self, ctx: SearchContext) -> dict[str, Any]:
        cfg = ctx.cfg
        T = cfg.timesteps
        seconds = ctx.fit(1, T, ("dense",), f"warm-up epoch (T={T})", on_epoch=ctx.capture_rewind)
        t0 = time.perf_counter()
        batch = ctx.x_train[:cfg.batch_size]
        kl = ctx.decide(lambda: ctx.trainer.timestep_kl(ctx.model, batch, T, binary=ctx.scratch))
        search_T = pick_early_timestep(kl, cfg.et_threshold)
        seconds += time.perf_counter() - t0
        ctx.state["et"] = {"kl": kl, "normalised_kl": normalised_kl(kl), "threshold": cfg.et_threshold,
                           "batch": len(batch), "search_timesteps": search_T}
        ctx.state["search_timesteps"] = search_T
        ctx.say(f"   Early-Time: normalised KL(T'=1..{T - 1}) = "
                + " ".join(f"{v:.2f}" for v in normalised_kl(kl)) + f" -> search at T'={search_T}")
        if cfg.epochs > 1:
            seconds += ctx.fit(cfg.epochs - 1, search_T, ("dense",), f"dense training (T'={search_T})",
                               first_epoch=2, on_epoch=ctx.capture_rewind)
        acc, ev = ctx.evaluate(search_T)
        acc_T, ev2 = (acc, 0.0) if search_T == T else ctx.evaluate(T)
        ctx.state["dense_accuracy"] = acc_T
        ctx.state["phase"] = "prune"
        return ctx.entry("dense", search_T, cfg.epochs, seconds, acc, ev + ev2, test_accuracy_full_T=acc_T)


class EarlyBird(IMP):
    """One dense epoch at a time until the global magnitude masks stop moving; then the mask
    is trained from the original initialisation."""

    name = "eb"
    title = "Early-Bird"
    final_from_init = True
    extendable = False  # it stops when the masks settle, not after a number of rounds

    def remaining_phases(self, ctx: SearchContext) -> int | None:
        return None

    def start(self, ctx: SearchContext) -> str:
        ctx.state["search_timesteps"] = ctx.cfg.timesteps
        ctx.state["eb"] = {"epochs": 0, "max_distance": [], "previous_distance": [], "converged": False,
                           "stop_epoch": None}
        ctx.saved["init"] = ctx.snapshot()
        if ctx.cfg.rewind_epoch == 0:
            ctx.saved["rewind"] = ctx.snapshot()
        return "eb-search"

    def phase_eb_search(self, ctx: SearchContext) -> dict[str, Any]:
        cfg = ctx.cfg
        T = cfg.timesteps
        eb = ctx.state["eb"]
        epoch = eb["epochs"] + 1
        opt = ctx.trainer.new_optimizer(ctx.model)
        if ctx.saved.get("optimizer"):
            opt.load_state_dict(ctx.saved["optimizer"])
        seconds = ctx.fit(1, T, ("eb",), f"Early-Bird search epoch {epoch} (T={T})", optimizer=opt,
                          first_epoch=epoch)
        t0 = time.perf_counter()
        ctx.saved["optimizer"] = opt.state_dict()
        keep = ctx.total - int(round(ctx.total * cfg.sparsity_goal))
        mask = ctx.magnitude_mask(keep)
        history = list(ctx.saved.get("eb_history", []))
        window = (history + [mask])[-cfg.eb_window:]

        def rule() -> dict[str, Any]:
            return {"previous": mask_distance(history[-1], mask) if history else None,
                    "window_max": max_pairwise_distance(window) if len(window) >= cfg.eb_window else None,
                    "converged": bool(early_bird_converged(window, cfg.eb_window, cfg.eb_threshold))}

        decision = ctx.decide(rule)
        ctx.saved["eb_history"] = window
        previous, window_max, converged = decision["previous"], decision["window_max"], decision["converged"]
        seconds += time.perf_counter() - t0
        acc, ev = ctx.evaluate(T)
        eb["epochs"] = epoch
        eb["max_distance"].append(window_max)
        eb["previous_distance"].append(previous)
        if converged or epoch >= cfg.eb_epochs_cap:
            eb["converged"] = converged
            eb["stop_epoch"] = epoch
            ctx.state["dense_accuracy"] = acc
            ctx.masks = mask
            ctx.saved["eb_history"] = []
            ctx.saved.pop("optimizer", None)
            ctx.state["phase"] = "final"
            ctx.say(f"   Early-Bird: {'masks settled' if converged else 'no convergence within the cap'} after "
                    f"epoch {epoch} (largest distance among the last {cfg.eb_window}: {window_max})")
        entry = ctx.entry("eb-search", T, 1, seconds, acc, ev, mask_distance_max=window_max,
                          mask_distance_previous=previous)
        entry["sparsity"] = 0.0  # the network is still dense while the mask is searched
        return entry
