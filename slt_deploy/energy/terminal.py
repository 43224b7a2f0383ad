"""Terminal rendering of an :class:`~slt_deploy.energy.report.EnergyReport` (rich tables, ~110 columns)."""

from __future__ import annotations

from typing import Any

from .breakeven import LEGEND
from .conventions import COMPONENTS
from .fmt import fmt_count, fmt_energy, fmt_ratio

SHORT = {"ac": "E ac", "mac": "E mac", "neuron": "E neur", "memory": "E mem"}
VARIANT_HEAD = {"ann-dense": "ANN dense", "ann": "ANN eff", "dense-snn": "dense SNN", "sparse-fp32": "sparse fp32",
                "sparse-binary": "sparse bin", "ticket": "ticket", "all-tokens": "all tokens"}


def print_report(report: Any, console: Any = None) -> None:
    """Headline, views, per-layer table, networks in both views, break-even rates, spread, per-profile totals."""
    from rich.console import Console

    console = console or Console()
    _print_headline(report, console)
    _print_layers(report, console)
    _print_tokens(report, console)
    _print_networks(report, console)
    _print_breakeven(report, console)
    _print_spread(report, console)
    _print_profiles(report, console)


def _print_headline(report: Any, console: Any) -> None:
    from rich.markup import escape

    conv, prof, info, t = report.convention, report.profile, report.ticket_info, report.ticket
    views = [c.name for c in report.views]
    say = console.print
    say(f"[bold]energy[/] of {escape(str(info['name']))}: T={info['timesteps']}, {info['encoding']} input, mean over "
        f"{info['samples']} inputs; profile [bold]{escape(prof.name)}[/], primary convention [bold]{conv.name}[/]")
    for c in report.views:
        say(f"  {c.view} ({c.name}): {escape(c.formula)}")
        say(f"      leaves out: {escape(c.leaves_out)}")
    say(f"  per inference: [bold]{fmt_count(t.ac)}[/] effective ACs, [bold]{fmt_count(t.mac)}[/] effective MACs, "
        f"mean spike rate {report.counts.spike_rate():.4f}")
    say(f"  [bold]headline[/]: {escape(report.headline(views[0]))}; {escape(report.headline(views[1]))}")
    say(f"  it rests on this: {escape(report.assumption())}")


def _print_layers(report: Any, console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    conv = report.convention
    inc = conv.includes
    excluded = [c for c in COMPONENTS if c not in inc]
    table = Table("layer", "weights", "ACs", "MACs", "rate", *(SHORT[c] + ("*" if c in excluded else "")
                                                              for c in COMPONENTS), "E total",
                  box=box.SIMPLE_HEAD, title=f"per layer, per inference (this ticket, {conv.name})",
                  title_justify="left")
    for r in report.layer_rows():
        style = "dim" if r.zero_op else None
        table.add_row(escape(r.label), escape(r.weights), "" if r.ac is None else fmt_count(r.ac),
                      "" if r.mac is None else fmt_count(r.mac), r.rate,
                      *(fmt_energy(getattr(r.energy, c)) for c in COMPONENTS), fmt_energy(r.energy.total(inc)),
                      style=style)
    console.print(table)
    if excluded:
        console.print(f"  * computed, not in the {conv.name} total; rate: nonzero inputs (in) or spikes (out) per "
                      "value and step; dim rows do no operations")


def _print_tokens(report: Any, console: Any) -> None:
    """Spiking transformers: effective ops per token, per head, and with every token kept."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    rows = report.token_rows()
    if not rows:
        return
    table = Table("layer", "tokens", "ops", "ops/token", "per head", "all tokens", "ops, all tokens",
                  box=box.SIMPLE_HEAD, title="per token and head, per inference (this ticket's activity)",
                  title_justify="left")
    for r in rows:
        table.add_row(escape(r["label"]), str(r["tokens"]), fmt_count(round(r["ops"], 1)),
                      fmt_count(round(r["ops_per_token"], 1)), ", ".join(fmt_count(round(h, 1)) for h in r["per_head"]),
                      f"x{r['token_factor']:g}", fmt_count(round(r["all_tokens_ops"], 1)))
    console.print(table)
    if report.counts.token_mask and not report.counts.tokens_followed:
        console.print("  the token axis could not be followed through the graph: the all-tokens counts equal the "
                      "kept ones")


def _print_networks(report: Any, console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    prof = report.profile
    views = [c.name for c in report.views]
    say = console.print
    vt = Table("network", "ACs", "MACs", "weight B", *(h for cv in views for h in (f"E {cv}", "vs ticket")),
               box=box.SIMPLE_HEAD, title=f"networks compared ({prof.name}): compute-only and memory-aware views",
               title_justify="left")
    for v in report.variants:
        cells = []
        for cv in views:
            e, mine = report.total(v.key, cv), report.total(convention=cv)
            cells += [fmt_energy(e), "this ticket" if v.is_ticket else fmt_ratio(e / mine if mine > 0 else None)]
        vt.add_row(VARIANT_HEAD.get(v.key, v.key), fmt_count(v.ac), fmt_count(v.mac),
                   f"{v.weight_bytes_at(prof.state_bits):,}", *cells)
    say(vt)
    for v in report.variants:
        say(f"  {v.key}: {escape(v.label)}; activity {escape(v.activity)}")
    say(escape("  savings = E[baseline] / E[ticket]:"))
    for cv in views:
        for s in report.savings(cv):
            if s.baseline in ("ann", "ann-dense", "dense-snn"):
                say(f"    [{cv}] {escape(s.formula)}")


def _print_breakeven(report: Any, console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    profiles = list(next(iter(report.breakeven.values())))
    bt = Table("view", "baseline", *profiles, box=box.SIMPLE_HEAD,
               title=f"break-even mean spike rate r* (the ticket saves below it; measured "
                     f"{report.counts.spike_rate():.4g})", title_justify="left")
    for cv, per_profile in report.breakeven.items():
        for key in next(iter(per_profile.values())):
            bt.add_row(cv, key, *(escape(per_profile[p][key].short()) for p in profiles))
    console.print(bt)
    console.print(f"  {LEGEND}")


def _print_spread(report: Any, console: Any) -> None:
    from rich import box
    from rich.table import Table

    st = Table("per input", "mean", "median", "p5", "p95", box=box.SIMPLE_HEAD, title="spread over inputs",
               title_justify="left")
    for k, v in report.spread().items():
        fmt = fmt_energy if k.startswith("energy") else (lambda n: fmt_count(round(n, 1)))
        st.add_row(k, *(fmt(v[q]) for q in ("mean", "median", "p5", "p95")))
    console.print(st)


def _print_profiles(report: Any, console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = report.ticket
    for cv in [c.name for c in report.views]:
        pt = Table("profile", *(VARIANT_HEAD.get(v.key, v.key) for v in report.variants), "vs ANN eff",
                   box=box.SIMPLE_HEAD, title=f"energy per inference under each profile ({cv})", title_justify="left")
        for name, totals in report.by_profile[cv].items():
            mine = totals[t.key]
            pt.add_row(escape(name), *(fmt_energy(totals[v.key]) for v in report.variants),
                       fmt_ratio(totals["ann"] / mine) if mine > 0 else "-")
        console.print(pt)
