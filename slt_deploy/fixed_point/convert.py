"""The conversion of a ticket to a chip's integers, layer by layer, with a report of what is exact and why.

The ticket's real-valued dynamics per neuron ``o`` are ``v = β·v + g·(Σ_S M_S·x_S + b)``, fire
``v > θ`` (the leaky form of :mod:`.neuron`). With one positive scale per neuron,
``λ[o] = 2^vth_shift·vth / θ[o]``, the integer membrane ``V = λ·v`` fires exactly when
``V > vth << vth_shift`` -- so per-neuron thresholds fold into per-row integer weights while
the chip's ``vth`` stays one number per layer (Loihi 2's numbers shown)::

    w_int[o, i] = round(M[o, i] · g[o] · vth / θ[o])     (|w_int| ≤ 127, or even and ≤ 254)
    bias_mant[o] = round(b[o] · g[o] · vth / θ[o])       (|bias_mant| ≤ 4095, bias_exp = 6)
    dv = round(4096 · (1 − β))                           (du = 4095: the current does not persist)
    reset_amount[o] = round(r[o] · 64 · vth / θ[o])      (subtracting resets, V units)

``vth`` (≤ 2^17 − 1) is the smallest value that makes every ratio an integer when one
exists (times a power of two where decays need low zero bits), else the value that uses
the 8-bit weight range (:mod:`.scale`). Every layer's report says which parts are exact
and why not (:mod:`.exactness`): where all are, the chip's spikes equal the float32
reference's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SltUnsupportedError
from ..ir.graph import Ticket
from ..registry import FIXED, FLOAT32
from ..result import Result
from .chip import LOIHI2, ChipSpec
from .exactness import decay_bits, float_exact, int_bounds, row_gcd, source_bounds, v2
from .inputs import input_scale
from .integers import FixedLayer, FixedSynapse
from .network import FixedNetwork
from .neuron import SUBTRACTING_RESETS, LeakyForm, leaky_form
from .plan import PlanLayer, PlanSource, make_plan, mark_graded_input
from .scale import Ratio, choose_scale
from .sparse import ConvSpec, SparseMap, conv_map


def to_fixed(ticket: Ticket, x: np.ndarray | None = None, *, input_frac_bits: int | None = None,
             chip: ChipSpec = LOIHI2) -> FixedNetwork:
    """Convert ``ticket`` to ``chip``'s integers (Loihi 2 unless told otherwise).

    ``x`` (optional) is the run's input: for direct (analog) encoding it fixes the input
    scale ``2^s`` (the smallest s <= 12 that makes x·2^s integers, else the largest that
    fits 15 bits) and the first layer's bounds. ``input_frac_bits`` forces s (default 0
    without ``x``: the input is fed as given, rounded to integers).
    """
    plan = make_plan(ticket)
    s_bits, x_info = input_scale(ticket, x, input_frac_bits, chip)
    mark_graded_input(plan, not x_info["binary"])
    ctx = _Context(ticket.timesteps, s_bits, x_info, ticket.encoding.kind, chip)
    layers = [_LayerConversion(pl, ctx).run() for pl in plan.layers]
    fixed = FixedNetwork(plan, layers, s_bits, {}, chip)
    fixed.report = _network_report(fixed, x_info)
    return fixed


def simulate_fixed(ticket: Ticket, x: np.ndarray, clamp_conv: bool | None = None, record: bool = True,
                   input_frac_bits: int | None = None) -> Result:
    """Run ``ticket`` in Loihi's integers (the conversion the Lava target makes for this input)."""
    return to_fixed(ticket, x, input_frac_bits=input_frac_bits).simulate(x, clamp_conv=clamp_conv, record=record)


def conversion_report(ticket: Ticket) -> dict[str, Any]:
    """The per-layer fixed-point report of ``ticket`` (no input needed; direct input is per run)."""
    return to_fixed(ticket).report


def fixed_semantics(ticket: Ticket, x: np.ndarray | None = None) -> tuple[set[str], list[str]]:
    """Loihi's integer semantics, and float32 too where the conversion proves the spikes equal."""
    report = to_fixed(ticket, x).report
    return {FIXED} | ({FLOAT32} if report.get("spikes_equal_reference") is True else set()), []


@dataclass(frozen=True)
class _Context:
    T: int
    s_bits: int                 # graded input x_int = round(x · 2^s_bits)
    x_info: dict[str, Any]      # what is known about the input (:func:`.inputs.input_scale`)
    enc: str                    # the ticket's input encoding
    chip: ChipSpec


class _LayerConversion:
    """One plan layer to integers: leaky form, decays, scale, integers, exactness, report (in that order)."""

    # set by the steps, in order
    zero_theta: bool            # every θ is 0: fire v > 0 (vth = 0), scale as if θ = 1
    theta_eff: np.ndarray       # θ per neuron, 1 where all are 0
    dv: np.ndarray              # integer voltage decays
    decay_on_grid: bool         # β = (D − dv)/D exactly
    scale: int                  # the layer scale (vth unless zero_theta)
    E: int                      # weight exponent: weights are k · 2^E
    bias_mant: np.ndarray
    reset_amount: np.ndarray    # V units

    def __init__(self, pl: PlanLayer, ctx: _Context) -> None:
        self.pl, self.ctx, self.chip = pl, ctx, ctx.chip
        self.n = pl.size
        self.notes: list[str] = []

    def run(self) -> FixedLayer:
        form = self._form()
        self._decays(form.beta)
        ratios, b_ratio, reset_ratio = self._scale(form)
        synapses, weights_exact = self._weights(ratios, form)
        bias_exact, reset_exact = self._bias_and_reset(b_ratio, reset_ratio)
        exact = self._exactness(form, synapses, weights_exact, bias_exact, reset_exact)
        pl, chip = self.pl, self.chip
        vth = 0 if self.zero_theta else int(self.scale)
        report: dict[str, Any] = {"layer": pl.name, "kind": pl.kind, "depth": pl.depth}
        report.update(self._report(vth, form, synapses, exact))
        readout = self.theta_eff.copy() if pl.kind == "li" else np.zeros(self.n)
        return FixedLayer(pl.name, pl.kind, pl.shape, synapses, vth, self.dv, self.bias_mant, form.reset,
                          self.reset_amount, pl.depth, readout, int(self.scale) << chip.vth_shift, report)

    # ---- per-neuron real parameters: decay β, input gain g, threshold θ, reset
    def _form(self) -> LeakyForm:
        pl = self.pl
        form = leaky_form(pl)
        if form.note:
            self.notes.append(form.note)
        theta = form.theta
        if pl.kind == "lif":
            if np.any(theta < 0):
                raise SltUnsupportedError(f"node '{pl.name}': negative thresholds cannot run on Loihi (vth is "
                                          "unsigned)")
            if np.any(theta == 0) and not np.all(theta == 0):
                raise SltUnsupportedError(
                    f"node '{pl.name}': thresholds mix zero and positive values; Loihi's threshold is one unsigned "
                    "value per layer and a zero threshold cannot be rescaled per neuron"
                )
        self.zero_theta = pl.kind == "lif" and bool(np.all(theta == 0))
        self.theta_eff = np.ones(self.n) if self.zero_theta else theta
        return form

    # ---- decays: (D − dv) / D
    def _decays(self, beta: np.ndarray) -> None:
        chip = self.chip
        unity = chip.decay_unity
        dv_real = unity * (1.0 - beta)
        self.dv = np.clip(np.round(dv_real), 0, chip.dv_max).astype(np.int64)
        self.decay_on_grid = bool(np.all(self.dv == dv_real))
        if not self.decay_on_grid:
            err = float(np.max(np.abs((unity - self.dv) / unity - beta)))
            self.notes.append(f"decay β is not a multiple of 1/{unity}: dv = round({unity}·(1−β)), |Δβ| ≤ {err:.2e}")
        if self.pl.kind != "or" and np.any(self.dv == unity):
            self.notes.append(f"β = 0 uses dv = {unity} (as lava-dl's netx does); {chip.name}'s {chip.decay_shift}-bit "
                              f"decay field holds 0..{unity - 1}")

    # ---- ratios that the layer scale multiplies: weights/θ, bias/θ, reset/θ
    def _scale(self, form: LeakyForm) -> tuple[list[Ratio], Ratio, Ratio]:
        pl, ctx = self.pl, self.ctx
        gain, theta = form.gain, self.theta_eff
        ratios = []
        for s in pl.sources:
            den = theta[s.M.rows] / gain[s.M.rows] * ((1 << ctx.s_bits) if s.graded else 1)
            ratios.append(Ratio(s.M.vals, den))
        b_ratio = Ratio(pl.bias, theta / gain)
        reset_ratio = Ratio(form.reset_amount * (1 << self.chip.vth_shift), theta)
        cur = source_bounds(pl, [r.approx for r in ratios], ctx.x_info, ctx.enc)
        self.scale, note = choose_scale(ratios, b_ratio, reset_ratio, float(cur.max(initial=0.0)), self.dv, ctx.T,
                                        self.chip)
        if note:
            self.notes.append(note)
        return ratios, b_ratio, reset_ratio

    # ---- integers
    def _weights(self, ratios: list[Ratio], form: LeakyForm) -> tuple[list[FixedSynapse], bool]:
        chip, scale = self.chip, self.scale
        k_all, k_exact = zip(*[r.at(scale) for r in ratios], strict=True) if ratios else ((), ())
        w_abs_max = max((float(np.abs(k).max(initial=0)) for k in k_all), default=0.0)
        E = 0 if w_abs_max <= chip.weight_mant_max else 1
        limit = chip.weight_max if E else chip.weight_mant_max
        clipped_w = w_abs_max > chip.weight_max
        ints = [np.clip(np.round(k / 2) * 2 if E else k, -limit, limit).astype(np.int64) for k in k_all]
        pairs = list(zip(ints, k_all, ratios, strict=True))
        exact = (not clipped_w) and all(k_exact) and all(bool(np.all(i == k)) for i, k, _ in pairs)
        if not exact:
            err = max((float(np.abs(i - r.approx * scale).max(initial=0)) for i, _, r in pairs), default=0.0)
            self.notes.append(f"weights are not on the grid θ/{scale}: rounded by up to {err:.3g} (threshold = {scale})"
                              + (f"; some clipped to ±{chip.weight_max}" if clipped_w else ""))
        synapses = []
        for s, W in zip(self.pl.sources, ints, strict=True):
            wmap = SparseMap(s.M.shape, s.M.rows, s.M.cols, W).map_vals(W)
            conv = _int_conv(s, wmap, self.theta_eff, form.gain, scale, self.ctx.s_bits, E, chip)
            synapses.append(FixedSynapse(s.src, s.lag, wmap, E, conv, s.graded, s.delay))
        self.E = E
        return synapses, exact

    def _bias_and_reset(self, b_ratio: Ratio, reset_ratio: Ratio) -> tuple[bool, bool]:
        chip, scale = self.chip, self.scale
        b_k, b_exact = b_ratio.at(scale)
        self.bias_mant = np.clip(b_k, -chip.bias_mant_max, chip.bias_mant_max).astype(np.int64)
        bias_exact = b_exact and bool(np.all(self.bias_mant == b_k))
        if not bias_exact:
            err = float(np.abs(self.bias_mant - b_ratio.approx * scale).max(initial=0))
            self.notes.append(f"bias is not on the grid θ/{scale}: rounded by up to {err:.3g}"
                              + (f"; clipped to ±{chip.bias_mant_max}" if np.any(np.abs(b_k) > chip.bias_mant_max)
                                 else ""))
        r_k, reset_exact = reset_ratio.at(scale)
        self.reset_amount = r_k.astype(np.int64)
        if not reset_exact:
            self.notes.append(f"the reset amount r·{1 << chip.vth_shift}·vth/θ is not an integer: rounded")
        return bias_exact, reset_exact

    # ---- exactness of the integer dynamics against the real-valued ticket, and of the float32 reference
    def _exactness(self, form: LeakyForm, synapses: list[FixedSynapse], weights_exact: bool, bias_exact: bool,
                   reset_exact: bool) -> dict[str, Any]:
        pl, ctx, chip = self.pl, self.ctx, self.chip
        decay_exact = self._decay_exact(form, synapses)
        a_bound = int_bounds(synapses, self.n, ctx.x_info, ctx.enc)
        u_safe = bool(np.all(a_bound * (1 << chip.act_shift) < chip.max_uv))
        v_bound = ctx.T * ((a_bound + np.abs(self.bias_mant)) * (1 << chip.vth_shift) + np.abs(self.reset_amount))
        v_safe = pl.kind == "or" or bool(np.all(v_bound <= chip.max_uv - 1))
        if not u_safe:
            self.notes.append(f"the synaptic input can exceed 2^{chip.state_bits - 1 - chip.act_shift} (worst case "
                              f"{int(a_bound.max())}) and wrap the {chip.state_bits}-bit current; the fixed-point "
                              "reference counts wraps")
        elif not v_safe:
            self.notes.append(f"in the worst case the membrane reaches ±2^{chip.state_bits - 1} within T steps and "
                              "clips; the fixed-point reference counts clips")
        fixed_exact = weights_exact and bias_exact and reset_exact and decay_exact
        float_ok = (float_exact(pl, ctx.T, ctx.x_info, form.reset_amount if form.reset != "zero" else None, self.dv,
                                self.decay_on_grid, chip) if form.same_operations else False)
        if fixed_exact and float_ok is False and pl.kind != "or" and form.same_operations:
            self.notes.append("the float32 reference rounds here (its values are not all on one power-of-two grid "
                              "below 2^24), so Loihi's exact integers can differ from it")
        graded = any(s.graded for s in pl.sources)
        input_exact = ctx.x_info.get("exact") if graded else True
        ok = fixed_exact and u_safe and v_safe and float_ok is not False and input_exact is not False
        pending = input_exact is None or float_ok is None
        return {"weights": weights_exact, "bias": bias_exact, "threshold": True, "decay": decay_exact,
                "reset": reset_exact, "input": input_exact, "no_overflow": bool(u_safe and v_safe),
                "float_reference": float_ok, "_equal": None if (ok and pending) else bool(ok)}

    def _decay_exact(self, form: LeakyForm, synapses: list[FixedSynapse]) -> bool:
        """The truncating decay never drops a bit within T steps: low zero bits ≥ z·(T − 1)."""
        chip, T = self.chip, self.ctx.T
        z = decay_bits(self.dv, chip)
        g_u = row_gcd(synapses, self.bias_mant, self.n)
        val = np.array([chip.vth_shift + v2(g) if g else 99 for g in g_u.tolist()])
        if form.reset in SUBTRACTING_RESETS:
            val = np.minimum(val, np.array([v2(r) if r else 99 for r in self.reset_amount.tolist()]))
        exact = self.pl.kind == "or" or (self.decay_on_grid and bool(np.all(val >= z * max(T - 1, 0))))
        if self.decay_on_grid and not exact:
            self.notes.append(f"decays truncate toward zero (v·({chip.decay_unity}−dv) >> {chip.decay_shift}) where "
                              "the float reference multiplies: the membrane lacks the low zero bits for exact decays "
                              "over T steps")
        return exact

    def _report(self, vth: int, form: LeakyForm, synapses: list[FixedSynapse],
                exact: dict[str, Any]) -> dict[str, Any]:
        chip, dv = self.chip, self.dv
        equal = exact.pop("_equal")
        report = {
            "vth": vth, "scale": int(self.scale), "weight_exp": self.E, "weight_bits": chip.weight_bits,
            "max_abs_weight": int(max((int(np.abs(s.W.vals).max(initial=0)) for s in synapses), default=0)),
            "dv": int(dv[0]) if bool(np.all(dv == dv[0])) else sorted({int(d) for d in dv.tolist()}),
            "du": chip.du_full, "bias_exp": chip.bias_exp, "reset": form.reset,
            "exact": exact,
            "spikes_equal_reference": equal,
            "notes": self.notes,
        }
        if self.pl.kind == "li":
            report["note_readout"] = (f"LI readout: the output is V·θ/({1 << chip.vth_shift}·scale), compared as "
                                      "values, not spikes")
        return report


def _int_conv(s: PlanSource, wmap: SparseMap, theta: np.ndarray, gain: np.ndarray, scale: int, s_bits: int,
              E: int, chip: ChipSpec) -> ConvSpec | None:
    """The integer kernel when the synapse is one Conv2d and the per-neuron scale is per channel."""
    if s.conv is None:
        return None
    c_out = s.conv.out_shape[0]
    th = theta.reshape(c_out, -1)
    g = gain.reshape(c_out, -1)
    if not (np.all(th == th[:, :1]) and np.all(g == g[:, :1])):
        return None
    ratio = s.conv.kernel * (g[:, 0] / th[:, 0]).reshape(-1, 1, 1, 1)
    if s.graded:
        ratio = ratio / (1 << s_bits)
    k = np.round(ratio * scale)
    limit = chip.weight_max if E else chip.weight_mant_max
    kk = np.clip(np.round(k / 2) * 2 if E else k, -limit, limit).astype(np.int64)
    cm = conv_map(s.conv.in_shape, kk, s.conv.stride, s.conv.padding, s.conv.dilation, s.conv.groups)
    same = (cm.shape == wmap.shape and cm.nnz == wmap.nnz and np.array_equal(cm.rows, wmap.rows)
            and np.array_equal(cm.cols, wmap.cols) and np.array_equal(cm.vals, wmap.vals))
    if not same:
        return None
    return ConvSpec(s.conv.in_shape, s.conv.out_shape, kk, s.conv.stride, s.conv.padding, s.conv.dilation,
                    s.conv.groups)


def _network_report(fixed: FixedNetwork, x_info: dict[str, Any]) -> dict[str, Any]:
    layers = [layer.report for layer in fixed.layers]
    eq = [r["spikes_equal_reference"] for r in layers]
    spikes_equal = None if any(e is None for e in eq) and all(e is not False for e in eq) else all(bool(e) for e in eq)
    info = {k: v for k, v in x_info.items() if k != "values"}
    return {
        "mode": "fixed_pt",
        "delay_steps": fixed.depth,
        "delay_note": (f"every Lava connection delays by one step: the output of ticket step t comes {fixed.depth} "
                       f"Lava steps after its input; the target runs T + {fixed.depth} steps and aligns"),
        "input": info,
        "spikes_equal_reference": spikes_equal,
        "layers": layers,
    }


__all__ = ["conversion_report", "fixed_semantics", "simulate_fixed", "to_fixed"]
