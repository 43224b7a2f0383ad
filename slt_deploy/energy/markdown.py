"""Markdown rendering of an :class:`~slt_deploy.energy.report.EnergyReport` (for papers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .conventions import COMPONENTS
from .report import fmt_count, fmt_energy

if TYPE_CHECKING:
    from .report import EnergyReport


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    return [_row(*header), _row(*("---" for _ in header)), *(_row(*r) for r in rows)]


def render_markdown(report: EnergyReport) -> str:
    """Summary, baselines with savings, per-layer table, per-profile table, constants and sources."""
    conv, prof, info, t = report.convention, report.profile, report.ticket_info, report.ticket
    inc = conv.includes
    lines = [
        f"## Energy of {info['name']}",
        "",
        f"T = {info['timesteps']} steps, {info['encoding']} input {tuple(info['input_shape'])}, averaged over "
        f"{info['batch']} inputs. Profile **{prof.name}** ({prof.description}); convention **{conv.name}**:",
        "",
        f"    {conv.formula}",
        "",
        f"Leaves out: {conv.leaves_out}.",
        "",
        f"Per inference: **{fmt_count(t.ac)}** effective ACs, **{fmt_count(t.mac)}** effective MACs, "
        f"**{fmt_energy(report.total())}**.",
        "",
        "### Baselines",
        "",
    ]
    savings = {s.baseline: s for s in report.savings()}
    rows = []
    for v in report.variants:
        s = savings.get(v.key)
        ratio = "1 (ticket)" if v.is_ticket else (f"{s.ratio:.2f}x" if s and s.ratio is not None else "-")
        rows.append([v.label, v.activity, fmt_count(v.ac), fmt_count(v.mac), f"{v.weight_bytes:,}",
                     fmt_energy(report.total(v.key)), ratio])
    lines += _table(["network", "activity", "ACs", "MACs", "weight bytes", "energy", "E / E_ticket"], rows)
    lines += ["", "Savings, E[baseline] / E[ticket]:", ""]
    lines += [f"- {s.formula}" for s in report.savings()]
    lines += ["", "### Per layer (this ticket)", ""]
    rows = [[r.name, r.kind, r.weights, "" if r.ac is None else fmt_count(r.ac),
             "" if r.mac is None else fmt_count(r.mac), r.rate,
             *(fmt_energy(getattr(r.energy, c)) for c in COMPONENTS), fmt_energy(r.energy.total(inc))]
            for r in report.layer_rows()]
    header = ["layer", "kind", "weights", "ACs", "MACs", "rate",
              *(f"E {c}" + ("" if c in inc else " (not in total)") for c in COMPONENTS), "E total"]
    lines += _table(header, rows)
    lines += ["", "rate: fraction of nonzero input values (in) or of neurons spiking (out) per step; "
              "energies in the columns marked \"not in total\" are computed but left out by the convention."]
    lines += ["", f"### Energy per inference under each profile ({conv.name})", ""]
    rows = [[name, *(fmt_energy(tot[v.key]) for v in report.variants),
             f"{tot['ann'] / tot[t.key]:.2f}x" if tot[t.key] > 0 else "-",
             f"{tot['dense-snn'] / tot[t.key]:.2f}x" if tot[t.key] > 0 else "-"]
            for name, tot in report.by_profile.items()]
    lines += _table(["profile", *(v.key for v in report.variants), "vs ANN", "vs dense SNN"], rows)
    lines += ["", f"### Constants ({prof.name})", ""]
    rows = [[k, f"{c.pj:g} pJ", c.source] for k, c in prof.constants.items()]
    rows += [[f"memory: {m.name}", f"{m.pj_per_64bit:g} pJ / 64 bit", m.source] for m in prof.memory]
    lines += _table(["constant", "value", "source"], rows)
    return "\n".join(lines) + "\n"
