"""Self-contained HTML rendering of an energy report: inline SVG figures, no scripts, no network.

Sections: headline (the effective-ANN saving in both views and the assumption it rests on),
the two views side by side with their formulas, the figures of :mod:`.figures` (needs
matplotlib, the ``report`` extra; without it the page has the tables only), break-even
spike rates per baseline and profile, the per-input spread, the per-layer table (zero-op
rows included) and every constant with its source.
"""

from __future__ import annotations

import html
from typing import Any

from .breakeven import LEGEND
from .conventions import COMPONENTS
from .fmt import fmt_count, fmt_energy, fmt_ratio

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
code, .formula { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.92em; }
.formula { background: #f5f5f7; padding: 0.5em 0.8em; border-radius: 4px; display: block; white-space: pre-wrap; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 10em; }
.card .v { font-size: 1.35em; font-weight: 600; } .card .k { color: #666; font-size: 0.85em; }
.views { display: flex; flex-wrap: wrap; gap: 1em; } .views > div { flex: 1 1 24em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f5f5f7; } td.l, th.l { text-align: left; }
tr.zero td { color: #888; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
.note { color: #8a5a00; background: #fff7e6; padding: 0.4em 0.8em; border-radius: 4px; }
svg { max-width: 100%; height: auto; }
"""

CAPTIONS = {
    "savings": "Energy per inference of each network, compute-only (left) and memory-aware (right) views, each on "
               "its own scale; the words are E[network] / E[ticket] as a saving or a cost.",
    "layers": "Energy per inference of each node of the ticket under the primary convention. Left: what the "
              "convention counts (its scale); right: terms it leaves out, computed and drawn apart. Pools, "
              "Flatten and Add are zero-op rows.",
    "activity": "Left: fraction of neurons spiking at each step, per spiking layer. Right: fraction of nonzero "
                "input values per synapse layer (dashed: analog input of a first layer).",
    "spread": "Per-input energy of the ticket and of the effective ANN (histograms); line: mean, band: 5th to "
              "95th percentile.",
    "breakeven": "Energy per inference against the ticket's mean spike rate (spike-driven counts scaled, their "
                 "pattern kept); the ticket saves against a baseline where its line lies below; dots mark "
                 "break-even rates.",
}
TITLES = {"savings": "Savings in both views", "layers": "Energy per layer", "activity": "Activity over time",
          "spread": "Spread over inputs", "breakeven": "Energy against spike rate"}


def _table(header: list[str], rows: list[list[Any]], left: int = 1, classes: list[str] | None = None) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(header))
    body = "".join(f"<tr class='{classes[k] if classes else ''}'>" + "".join(
        f'<td class="{"l" if i < left else ""}">{html.escape(str(c))}</td>' for i, c in enumerate(r)) + "</tr>"
        for k, r in enumerate(rows))
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _plots(report: Any) -> list[tuple[str, str, str]]:
    """(title, inline SVG, caption) per figure; empty without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    from .figures import inline_svg

    return [(TITLES[name], inline_svg(fig), CAPTIONS[name]) for name, fig in report.figures().items()]


def render_html(report: Any) -> str:
    """The whole page as one string (UTF-8, no external resources)."""
    conv, prof, info, t = report.convention, report.profile, report.ticket_info, report.ticket
    esc = html.escape
    views = [c.name for c in report.views]
    cards = [("effective ACs / inference", fmt_count(t.ac)), ("effective MACs / inference", fmt_count(t.mac)),
             ("mean spike rate", f"{report.counts.spike_rate():.4f}")]
    for c in report.views:
        cards.append((f"vs effective ANN, {c.view}", report.saving("ann", c.name).words))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Energy report: {esc(str(info['name']))}</title><style>{CSS}</style></head><body>",
        f"<h1>Energy report: {esc(str(info['name']))}</h1>",
        f"<p>T = {info['timesteps']} steps, {esc(info['encoding'])} input {esc(str(tuple(info['input_shape'])))}, "
        f"averaged over {info['samples']} inputs. Profile <b>{esc(prof.name)}</b> ({esc(prof.description)}); "
        f"primary convention <b>{esc(conv.name)}</b>.</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><div class='v'>{esc(v)}</div><div class='k'>{esc(k)}</div>"
                                        "</div>" for k, v in cards) + "</div>",
        f"<p class='note'>Headline: {esc(report.headline(views[0]))}; {esc(report.headline(views[1]))}. "
        f"It rests on this: {esc(report.assumption())}.</p>",
        "<h2>Compute-only and memory-aware views</h2><div class='views'>",
    ]
    for c in report.views:
        parts.append(f"<div><b>{esc(c.view)}: {esc(c.name)}</b><span class='formula'>{esc(c.formula)}</span>"
                     f"<p>Leaves out: {esc(c.leaves_out)}.</p></div>")
    parts.append("</div>")
    rows = []
    for v in report.variants:
        row = [v.label, v.activity, fmt_count(v.ac), fmt_count(v.mac), f"{v.weight_bytes_at(prof.state_bits):,}"]
        for cv in views:
            e = report.total(v.key, cv)
            mine = report.total(convention=cv)
            row += [fmt_energy(e), "this ticket" if v.is_ticket else fmt_ratio(e / mine if mine > 0 else None)]
        rows.append(row)
    header = ["network", "activity", "ACs", "MACs", "weight bytes"]
    for cv in views:
        header += [f"E ({cv})", f"vs ticket ({cv})"]
    parts += ["<h2>Networks compared</h2>", _table(header, rows, 2),
              "<ul>" + "".join(f"<li><code>{esc(s.formula)}</code> [{esc(s.convention)}]</li>"
                               for cv in views for s in report.savings(cv)) + "</ul>"]
    plots = _plots(report)
    if not plots:
        parts.append("<p class='note'>Figures need matplotlib: <code>pip install 'slt-deploy[report]'</code>.</p>")
    for title, svg, caption in plots:
        parts.append(f"<h2>{esc(title)}</h2><figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>")
    parts += ["<h2>Break-even spike rate</h2>",
              f"<p>Mean spike rate r* above which the ticket stops saving energy against each baseline (measured "
              f"r<sub>0</sub> = {report.counts.spike_rate():.4g}); formula in docs/energy.md.</p>",
              _breakeven_table(report)]
    spread = report.spread()
    rows = [[k, *(fmt_energy(v[q]) if k.startswith("energy") else fmt_count(round(v[q], 1))
                  for q in ("mean", "median", "p5", "p95"))] for k, v in spread.items()]
    parts += ["<h2>Spread over inputs</h2>", _table(["quantity", "mean", "median", "p5", "p95"], rows)]
    inc = conv.includes
    layer_rows = report.layer_rows()
    rows = [[r.label, r.weights, "" if r.ac is None else fmt_count(r.ac), "" if r.mac is None else fmt_count(r.mac),
             r.rate, *(fmt_energy(getattr(r.energy, c)) for c in COMPONENTS), fmt_energy(r.energy.total(inc))]
            for r in layer_rows]
    parts += [f"<h2>Per layer (this ticket, per inference, {esc(conv.name)})</h2>",
              _table(["layer", "weights", "ACs", "MACs", "rate",
                      *(f"E {c}" + ("" if c in inc else " (excl.)") for c in COMPONENTS), "E total"], rows, 2,
                     ["zero" if r.zero_op else "" for r in layer_rows]),
              "<p>rate: fraction of nonzero input values (in) or of neurons spiking (out) per step; (excl.): "
              "computed, left out by the convention; grey rows do no operations.</p>"]
    parts += _token_parts(report)
    for cv in views:
        rows = [[name, *(fmt_energy(tot[v.key]) for v in report.variants),
                 fmt_ratio(tot["ann"] / tot[t.key]) if tot[t.key] > 0 else "-"]
                for name, tot in report.by_profile[cv].items()]
        parts += [f"<h2>Energy per inference under each profile ({esc(cv)})</h2>",
                  _table(["profile", *(v.key for v in report.variants), "vs effective ANN"], rows)]
    rows = [[k, f"{c.pj:g} pJ", c.source] for k, c in prof.constants.items()]
    rows += [[f"memory: {m.name}", f"{m.pj_per_64bit:g} pJ / 64 bit", m.source] for m in prof.memory]
    parts += [f"<h2>Constants of {esc(prof.name)}</h2>", _table(["constant", "value", "source"], rows, 3),
              f"<p>ANN hidden sparsity source: {esc(report.ann.sparsity_source)}.</p>",
              f"<p>Report schema {esc(report.schema)}; formulas in docs/energy.md.</p></body></html>"]
    return "\n".join(parts)


def _token_parts(report: Any) -> list[str]:
    """The per-token table of a spiking transformer (nothing for other tickets)."""
    tokens = report.token_rows()
    if not tokens:
        return []
    rows = [[r["label"], str(r["tokens"]), fmt_count(round(r["ops"], 1)), fmt_count(round(r["ops_per_token"], 1)),
             ", ".join(fmt_count(round(h, 1)) for h in r["per_head"]), f"x{r['token_factor']:g}",
             fmt_count(round(r["all_tokens_ops"], 1))] for r in tokens]
    return ["<h2>Per token and head (this ticket's activity, per inference)</h2>",
            _table(["layer", "tokens", "ops", "ops/token", "per head", "token factor", "ops, all tokens"], rows),
            "<p>token factor: work with every token kept / work with the kept tokens.</p>"]


def _breakeven_table(report: Any) -> str:
    profiles = list(next(iter(report.breakeven.values())))
    rows = []
    for cv, per_profile in report.breakeven.items():
        for key in next(iter(per_profile.values())):
            rows.append([cv, key, *(per_profile[p][key].short() for p in profiles)])
    return _table(["view", "baseline", *profiles], rows, 2) + f"<p>{html.escape(LEGEND)}.</p>"
