"""Terminal rendering of an :class:`~slt_deploy.energy.report.EnergyReport` (rich tables, ~100 columns)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conventions import COMPONENTS
from .report import fmt_count, fmt_energy

if TYPE_CHECKING:
    from .report import EnergyReport

SHORT = {"ac": "E ac", "mac": "E mac", "neuron": "E neur", "memory": "E mem"}
VARIANT_HEAD = {"ann": "ANN", "dense-snn": "dense SNN", "sparse-fp32": "sparse fp32", "sparse-binary": "sparse bin",
                "ticket": "ticket"}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def print_report(report: EnergyReport, console: Any = None) -> None:
    """Header with the convention, per-layer table, compared networks with savings, per-profile totals."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    conv, prof, info, t = report.convention, report.profile, report.ticket_info, report.ticket
    inc = conv.includes
    say = console.print
    say(f"[bold]energy[/] of {escape(str(info['name']))}: T={info['timesteps']}, {info['encoding']} input, mean over "
        f"{info['batch']} inputs; profile [bold]{escape(prof.name)}[/], convention [bold]{conv.name}[/]")
    say(f"  formula:    {escape(conv.formula)}")
    say(f"  leaves out: {escape(conv.leaves_out)}")
    say(f"  per inference: [bold]{fmt_count(t.ac)}[/] effective ACs, [bold]{fmt_count(t.mac)}[/] effective MACs, "
        f"[bold]{fmt_energy(report.total())}[/]")

    excluded = [c for c in COMPONENTS if c not in inc]
    table = Table("layer", "weights", "ACs", "MACs", "rate", *(SHORT[c] + ("*" if c in excluded else "")
                                                              for c in COMPONENTS), "E total",
                  box=box.SIMPLE_HEAD, title="per layer, per inference (this ticket)", title_justify="left")
    for r in report.layer_rows():
        table.add_row(r.name, r.weights if r.ac is not None else f"{r.kind}, {r.weights}",
                      "" if r.ac is None else fmt_count(r.ac), "" if r.mac is None else fmt_count(r.mac), r.rate,
                      *(fmt_energy(getattr(r.energy, c)) for c in COMPONENTS), fmt_energy(r.energy.total(inc)))
    say(table)
    if excluded:
        say(f"  * computed, not in the {conv.name} total; rate: nonzero inputs (in) or spikes (out) per value and step")

    savings = {s.baseline: s for s in report.savings()}
    vt = Table("network", "activity", "ACs", "MACs", "weight B", "energy", "E / E_ticket", box=box.SIMPLE_HEAD,
               title=f"networks compared ({prof.name}, {conv.name})", title_justify="left")
    for v in report.variants:
        s = savings.get(v.key)
        ratio = "1 (ticket)" if v.is_ticket else (f"{s.ratio:.2f}x" if s and s.ratio is not None else "-")
        vt.add_row(v.key, v.activity.split(":")[0].split(" (")[0], fmt_count(v.ac), fmt_count(v.mac),
                   f"{v.weight_bytes:,}", fmt_energy(report.total(v.key)), ratio)
    say(vt)
    for v in report.variants:
        say(f"  {v.key}: {escape(v.label)}; activity {escape(v.activity)}")
    say(escape("  savings = E[baseline] / E[ticket]:"))
    for s in report.savings():
        say(f"    {escape(s.formula)}")

    pt = Table("profile", *(VARIANT_HEAD.get(v.key, v.key) for v in report.variants), "vs ANN", "vs dense SNN",
               box=box.SIMPLE_HEAD, title=f"energy per inference under each profile ({conv.name})",
               title_justify="left")
    for name, totals in report.by_profile.items():
        mine = totals[t.key]
        pt.add_row(escape(name), *(fmt_energy(totals[v.key]) for v in report.variants),
                   _ratio(totals["ann"], mine), _ratio(totals["dense-snn"], mine))
    say(pt)
