"""Markdown rendering of an :class:`~slt_deploy.energy.report.EnergyReport` (for papers)."""

from __future__ import annotations

from typing import Any

from .breakeven import LEGEND
from .conventions import COMPONENTS
from .fmt import fmt_count, fmt_energy, fmt_ratio


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    return [_row(*header), _row(*("---" for _ in header)), *(_row(*r) for r in rows)]


def render_markdown(report: Any) -> str:
    """Headline, both views with formulas, baselines, break-even rates, spread, per layer, profiles, constants."""
    conv, prof, info, t = report.convention, report.profile, report.ticket_info, report.ticket
    views = [c.name for c in report.views]
    lines = [
        f"## Energy of {info['name']}",
        "",
        f"T = {info['timesteps']} steps, {info['encoding']} input {tuple(info['input_shape'])}, averaged over "
        f"{info['samples']} inputs. Profile **{prof.name}** ({prof.description}); primary convention "
        f"**{conv.name}**.",
        "",
        f"Per inference: **{fmt_count(t.ac)}** effective ACs, **{fmt_count(t.mac)}** effective MACs, mean spike "
        f"rate {report.counts.spike_rate():.4f}.",
        "",
        f"**Headline**: {report.headline(views[0])}; {report.headline(views[1])}. It rests on this: "
        f"{report.assumption()}.",
        "",
        "### Views",
        "",
    ]
    for c in report.views:
        lines += [f"- **{c.view}** ({c.name}): `{c.formula}`; leaves out {c.leaves_out}."]
    lines += ["", "### Networks compared", ""]
    rows = []
    for v in report.variants:
        row: list[object] = [v.label, v.activity, fmt_count(v.ac), fmt_count(v.mac),
                             f"{v.weight_bytes_at(prof.state_bits):,}"]
        for cv in views:
            e, mine = report.total(v.key, cv), report.total(convention=cv)
            row += [fmt_energy(e), "this ticket" if v.is_ticket else fmt_ratio(e / mine if mine > 0 else None)]
        rows.append(row)
    header = ["network", "activity", "ACs", "MACs", "weight bytes"]
    for cv in views:
        header += [f"E ({cv})", f"vs ticket ({cv})"]
    lines += _table(header, rows)
    lines += ["", "Savings, E[baseline] / E[ticket]:", ""]
    lines += [f"- [{s.convention}] {s.formula}" for cv in views for s in report.savings(cv)]
    lines += ["", f"### Break-even spike rate (measured mean rate r0 = {report.counts.spike_rate():.4g})", ""]
    profiles = list(next(iter(report.breakeven.values())))
    rows = []
    for cv, per_profile in report.breakeven.items():
        for key in next(iter(per_profile.values())):
            rows.append([cv, key, *(per_profile[p][key].short() for p in profiles)])
    lines += _table(["view", "baseline", *profiles], rows)
    lines += ["", LEGEND + "."]
    lines += ["", "### Spread over inputs", ""]
    rows = [[k, *(fmt_energy(v[q]) if k.startswith("energy") else fmt_count(round(v[q], 1))
                  for q in ("mean", "median", "p5", "p95"))] for k, v in report.spread().items()]
    lines += _table(["quantity", "mean", "median", "p5", "p95"], rows)
    lines += ["", f"### Per layer (this ticket, {conv.name})", ""]
    inc = conv.includes
    rows = [[r.label, r.weights, "" if r.ac is None else fmt_count(r.ac), "" if r.mac is None else fmt_count(r.mac),
             r.rate, *(fmt_energy(getattr(r.energy, c)) for c in COMPONENTS), fmt_energy(r.energy.total(inc))]
            for r in report.layer_rows()]
    header = ["layer", "weights", "ACs", "MACs", "rate",
              *(f"E {c}" + ("" if c in inc else " (not in total)") for c in COMPONENTS), "E total"]
    lines += _table(header, rows)
    lines += ["", "rate: fraction of nonzero input values (in) or of neurons spiking (out) per step; "
              "energies in the columns marked \"not in total\" are computed but left out by the convention."]
    lines += token_lines(report)
    for cv in views:
        lines += ["", f"### Energy per inference under each profile ({cv})", ""]
        rows = [[name, *(fmt_energy(tot[v.key]) for v in report.variants),
                 fmt_ratio(tot["ann"] / tot[t.key]) if tot[t.key] > 0 else "-"]
                for name, tot in report.by_profile[cv].items()]
        lines += _table(["profile", *(v.key for v in report.variants), "vs effective ANN"], rows)
    lines += ["", f"### Constants ({prof.name})", ""]
    rows = [[k, f"{c.pj:g} pJ", c.source] for k, c in prof.constants.items()]
    rows += [[f"memory: {m.name}", f"{m.pj_per_64bit:g} pJ / 64 bit", m.source] for m in prof.memory]
    rows += [["ANN hidden ReLU sparsity", f"{report.ann.sparsity:.3f}", report.ann.sparsity_source]]
    lines += _table(["constant", "value", "source"], rows)
    return "\n".join(lines) + "\n"


def token_lines(report: Any) -> list[str]:
    """The per-token table of a spiking transformer (nothing for other tickets)."""
    rows = report.token_rows()
    if not rows:
        return []
    lines = ["", "### Per token and head (this ticket's activity, per inference)", ""]
    lines += _table(["layer", "tokens", "ops", "ops/token", "per head", "token factor", "ops, all tokens"],
                    [[r["label"], str(r["tokens"]), fmt_count(round(r["ops"], 1)),
                      fmt_count(round(r["ops_per_token"], 1)),
                      ", ".join(fmt_count(round(h, 1)) for h in r["per_head"]), f"x{r['token_factor']:g}",
                      fmt_count(round(r["all_tokens_ops"], 1))] for r in rows])
    return lines + ["", "token factor: work with every token kept / work with the kept tokens (docs/energy.md §9)."]
