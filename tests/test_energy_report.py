"""The report around the counts: streamed counts equal one unbatched run, per-sample spread,
both views side by side, break-even spike rates worked by hand, savings in words, per-layer
labels with zero-op rows, figures (matplotlib, SVG and PDF), and the HTML page in headless
Chromium (screenshot, no console errors).

Oracles: the unbatched run's exact counts; energies worked by hand from the profile constants;
the linear model solved by hand; the rendered page itself.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from slt_deploy.energy import collect, count_run, energy
from slt_deploy.energy.breakeven import energy_at
from slt_deploy.energy.report import fmt_ratio, layer_label
from slt_deploy.ir import LI, LIF, Conv2d, Encoding, Flatten, Linear, MaxPool2d, binarize, sequential
from slt_deploy.reference import simulate

ROOT = Path(__file__).resolve().parents[1]


def _w(rng: np.random.Generator, shape: tuple[int, ...], density: float = 0.5):
    return binarize(rng.normal(size=shape).astype(np.float32), rng.random(shape) < density)


def mlp(encoding: Encoding = Encoding(), T: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    return sequential((9,), [Linear("fc1", _w(rng, (16, 9), 0.6)), LIF("lif1", shape=(16,), beta=0.9, threshold=0.3),
                             Linear("fc2", _w(rng, (4, 16))), LIF("lif2", shape=(4,), threshold=0.3)], T, encoding)


def conv():
    rng = np.random.default_rng(1)
    return sequential((2, 6, 6), [
        Conv2d("c1", _w(rng, (4, 2, 3, 3)), padding=1), LIF("l1", shape=(4, 6, 6), threshold=0.2),
        MaxPool2d("pool"), Flatten("flat"), Linear("fc", _w(rng, (3, 36))), LI("out", shape=(3,), beta=0.5)], 4)


def _stats_equal(a, b) -> None:
    assert (a.timesteps, a.samples) == (b.timesteps, b.samples)
    for sa, sb in zip(a.synapses, b.synapses, strict=True):
        for f in ("ac_t", "mac_t", "dense_ac_t", "dense_mac_t", "nonzero_t", "binary_t", "ac_b", "mac_b", "nonzero_b"):
            np.testing.assert_array_equal(getattr(sa, f), getattr(sb, f), err_msg=f"{sa.name}.{f}")
    for na, nb in zip(a.neurons, b.neurons, strict=True):
        np.testing.assert_array_equal(na.spikes_t, nb.spikes_t)
        np.testing.assert_array_equal(na.spikes_b, nb.spikes_b)


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("kind", ["direct", "rate", "spikes"])
def test_streamed_counts_equal_one_unbatched_run(kind: str) -> None:
    rng = np.random.default_rng(2)
    if kind == "direct":
        ticket, x = conv(), rng.normal(size=(23, 2, 6, 6)).astype(np.float32)
    elif kind == "rate":
        ticket, x = mlp(Encoding("rate", seed=7)), rng.random((23, 9))
    else:
        ticket, x = mlp(Encoding("spikes")), (rng.random((5, 23, 9)) < 0.3).astype(np.float32)
    whole = collect(ticket, x, batch_size=1000)
    for size in (1, 4, 10):
        _stats_equal(collect(ticket, x, batch_size=size), whole)
    # and the unbatched reduction is the exact count of the reference run
    counts = count_run(ticket, simulate(ticket, x))
    for s, c in zip(whole.synapses, counts.synapses, strict=True):
        assert (s.ac, s.mac) == (c.ac, c.mac)
        np.testing.assert_array_equal(s.ac_b + s.mac_b, c.effective.sum(axis=0))


def test_progress_is_reported_per_batch() -> None:
    ticket, x = mlp(), np.random.default_rng(0).random((10, 9))
    seen: list[tuple[str, int, int]] = []
    energy(ticket, x, batch_size=3, progress=lambda *a: seen.append(a))
    assert [s for s in seen if s[0] == "ticket"] == [("ticket", 3, 10), ("ticket", 6, 10), ("ticket", 9, 10),
                                                     ("ticket", 10, 10)]


# ----------------------------------------------------------------------------- spread
def test_per_sample_energy_by_hand_and_mean() -> None:
    ticket, x = mlp(), np.random.default_rng(3).random((30, 9))
    r = energy(ticket, x)
    ac = sum(s.ac_b for s in r.counts.synapses)
    mac = sum(s.mac_b for s in r.counts.synapses)
    # compute-only neurobench, cmos45-fp32: E[b] = 0.9 AC[b] + 4.6 MAC[b] exactly
    np.testing.assert_allclose(r.per_sample["neurobench"]["ticket"], 0.9 * ac + 4.6 * mac)
    for view in ("neurobench", "memory-aware"):
        for who, key in (("ticket", None), ("ann", "ann")):
            assert r.per_sample[view][who].mean() == pytest.approx(r.total(key, view))
    # memory-aware adds per-sample neuron terms: (E_act - E_inact) * spikes = 0 on cmos45 (5.5 - 5.5)
    d = r.per_sample["memory-aware"]["ticket"] - r.per_sample["neurobench"]["ticket"]
    np.testing.assert_allclose(d, d[0])
    s = r.spread()
    assert s["ops.ticket.effective_mac"]["mean"] == pytest.approx(r.effective_mac)
    assert s["energy_pj.neurobench.ticket"]["p5"] <= s["energy_pj.neurobench.ticket"]["median"] <= \
        s["energy_pj.neurobench.ticket"]["p95"]


def test_spread_json_every_sample_or_percentiles(monkeypatch: pytest.MonkeyPatch) -> None:
    import slt_deploy.energy.spread as spread

    ticket, x = mlp(), np.random.default_rng(4).random((12, 9))
    d = energy(ticket, x).to_dict()
    assert len(d["spread"]["energy_pj"]["neurobench"]["ticket"]["per_sample"]) == 12
    assert len(d["spread"]["ops"]["effective_mac"]["per_sample"]) == 12
    monkeypatch.setattr(spread, "PER_SAMPLE_LIMIT", 5)
    monkeypatch.setattr(spread.series, "__defaults__", (5,))
    d = energy(ticket, x).to_dict()
    q = d["spread"]["energy_pj"]["neurobench"]["ticket"]
    assert "per_sample" not in q and len(q["percentiles"]) == 101 and q["samples"] == 12
    json.dumps(d)


# ----------------------------------------------------------------------------- views and break-even
def test_both_views_side_by_side_by_default() -> None:
    ticket, x = mlp(), np.random.default_rng(5).random((8, 9))
    for primary, compute in (("neurobench", "neurobench"), ("spikformer", "spikformer"),
                             ("memory-aware", "neurobench")):
        r = energy(ticket, x, convention=primary)
        assert [c.name for c in r.views] == [compute, "memory-aware"]
        assert r.convention.name == primary
        d = r.to_dict()
        assert set(d["per_inference"]["energy_pj_by_view"]) == {compute, "memory-aware"}
        assert {s["convention"] for s in d["savings"]} == {compute, "memory-aware"}
        assert all(v["formula"] for v in d["views"])
    md = r.to_markdown()
    assert "compute-only" in md and "memory-aware" in md and "break-even" in md.lower()


PRICEY_AC = """
name = "pricey-ac"
[constants.ac]
pj = 20.0
source = "test: accumulates priced high so that the break-even rate lies inside (0, 1)"
[constants.mac]
pj = 4.6
source = "test"
[constants.neuron_active]
pj = 0.0
source = "test"
[constants.neuron_inactive]
pj = 0.0
source = "test"
"""


@pytest.mark.parametrize("T,profile", [(1, "pricey"), (1, "cmos45-fp32"), (6, "cmos45-fp32")])
def test_break_even_worked_by_hand(tmp_path: Path, T: int, profile: str) -> None:
    # neurobench view: the ticket's energy is E_MAC MAC(fc1) + E_AC AC(fc2); only fc2 is driven by spikes,
    # so E_t(r) = E_MAC MAC1 + E_AC AC2 r / r0. The estimated ANN is constant. Break-even:
    # r* = r0 (E_ann - E_MAC MAC1) / (E_AC AC2): below 0 never, above 1 always.
    if profile == "pricey":
        (tmp_path / "p.toml").write_text(PRICEY_AC)
        profile = str(tmp_path / "p.toml")
    ticket, x = mlp(T=T), np.random.default_rng(6).random((20, 9))
    r = energy(ticket, x, profile=profile)
    e_ac, e_mac = r.profile.pj("ac"), r.profile.pj("mac")
    n = r.counts.samples
    mac1, ac2 = r.counts.synapse("fc1").mac / n, r.counts.synapse("fc2").ac / n
    assert r.counts.synapse("fc1").ac == 0 and r.counts.synapse("fc2").mac == 0
    r0 = r.counts.spike_rate()
    assert r0 == pytest.approx(sum(nl.spikes for nl in r.counts.neurons) / ((16 + 4) * T * n))
    be = r.breakeven["neurobench"][r.profile_label]["ann"]
    expect = r0 * (r.total("ann") - e_mac * mac1) / (e_ac * ac2)
    if expect < 0:
        assert be.status == "never" and be.rate is None
    else:
        assert be.rate == pytest.approx(expect)
        assert be.status == ("always" if expect > 1 else "below")
    if profile.endswith(".toml"):
        assert be.status == "below" and 0 < be.rate < 1
    # at r* the ticket's scaled energy equals the baseline's (the crossing, found independently)
    for view in ("neurobench", "memory-aware"):
        for key, b in r.breakeven[view][r.profile_label].items():
            if b.rate is not None:
                e_t = energy_at(r.ticket, b.rate / r0, r.profile, r.view(view), T)
                e_b = energy_at(r.variant(key), b.rate / r0, r.profile, r.view(view), T)
                assert e_t == pytest.approx(e_b, rel=1e-9)
    assert {"cmos45-fp32", "cmos45-fp16", "cmos45-int8", "cmos45-int32", "loihi"} <= set(r.breakeven["memory-aware"])


def test_break_even_never_and_always() -> None:
    # a high memory floor: with the int8 profile the ticket reads weights and membranes every step; a
    # dense ANN reading int8 weights once can be cheaper than the ticket with no spikes at all
    ticket, x = mlp(T=40), np.random.default_rng(7).random((10, 9))
    r = energy(ticket, x, convention="memory-aware")
    be = r.breakeven["memory-aware"]["cmos45-int8"]["ann"]
    assert be.ticket_at_zero > be.baseline_at_zero
    assert be.status == "never" and be.text().startswith("none: costs more")
    assert r.breakeven["neurobench"]["cmos45-fp32"]["dense-snn"].status == "always"


def test_ratios_in_words() -> None:
    assert fmt_ratio(1 / 1.32) == "costs 1.32x more"
    assert fmt_ratio(2.44) == "saves 2.44x"
    assert fmt_ratio(1.0) == "about equal"
    assert fmt_ratio(None).startswith("undefined")
    ticket, x = mlp(T=40), np.random.default_rng(7).random((10, 9))
    r = energy(ticket, x, profile="cmos45-int8", convention="memory-aware")
    s = r.saving("ann")
    assert s.ratio < 1 and s.words.startswith("costs") and "more" in s.words
    page = r.to_html()
    assert "costs " in page and "0." + f"{s.ratio:.2f}"[2:] + "x saving" not in page


# ----------------------------------------------------------------------------- layers and figures
def test_layer_labels_and_zero_op_rows() -> None:
    ticket, x = conv(), np.random.default_rng(8).normal(size=(6, 2, 6, 6))
    r = energy(ticket, x)
    rows = {row.name: row for row in r.layer_rows()}
    assert list(rows) == ["c1", "l1", "pool", "flat", "fc", "out"]
    assert rows["c1"].label == "c1 conv 4×3×3" and layer_label(ticket, "fc") == "fc linear 36→3"
    assert rows["pool"].label == "pool maxpool 2×2" and rows["flat"].label == "flat flatten →36"
    for name in ("pool", "flat"):
        assert rows[name].zero_op and rows[name].energy.total() == 0
    assert [z["name"] for z in r.to_dict()["zero_op_layers"]] == ["pool", "flat"]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_figures_content_and_scales() -> None:
    pytest.importorskip("matplotlib")
    ticket, x = conv(), np.random.default_rng(9).normal(size=(10, 2, 6, 6))
    r = energy(ticket, x, profile="loihi")
    figs = r.figures()
    assert list(figs) == ["savings", "layers", "activity", "spread", "breakeven"]
    # layers: the left panel's scale is what neurobench counts; neuron and memory terms in a panel of their own
    left, right = figs["layers"].axes
    rows = r.layer_rows()
    included = max(row.energy.ac + row.energy.mac for row in rows)
    excluded = max(row.energy.neuron + row.energy.memory for row in rows)
    unit_scale = {"pJ": 1.0, "nJ": 1e3, "µJ": 1e6}
    lu = left.get_ylabel().split("(")[1].rstrip(")")
    ru = right.get_ylabel().split("(")[1].rstrip(")")
    assert left.get_ylim()[1] <= 1.1 * included / unit_scale[lu]
    assert right.get_ylim()[1] >= excluded / unit_scale[ru]
    assert "counted by neurobench" in left.get_title() and "left out" in right.get_title()
    ticks = [t.get_text() for t in left.get_xticklabels()]
    assert ticks == ["c1 conv 4×3×3", "l1 lif 4×6×6", "pool maxpool 2×2", "flat flatten →36", "fc linear 36→3",
                     "out li 3"]
    assert sum("0 ops" in t for t in _texts(figs["layers"])) >= 2
    # activity: spike rate and input nonzero fraction on separately labelled axes
    a, b = figs["activity"].axes
    assert "spike rate" in a.get_ylabel() and "nonzero" in b.get_ylabel() and a.get_ylabel() != b.get_ylabel()
    # savings: both views, ratios in words
    assert len(figs["savings"].axes) == 2
    assert any("saves" in t or "costs" in t for t in _texts(figs["savings"]))
    assert len(figs["breakeven"].axes) == 2 and len(figs["spread"].axes) == 2


def test_save_figures_svg_and_pdf(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ticket, x = mlp(), np.random.default_rng(10).random((8, 9))
    paths = energy(ticket, x).save_figures(tmp_path / "figs")
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in ("savings", "layers", "activity", "spread",
                                                                         "breakeven") for e in ("svg", "pdf"))
    for p in paths:
        data = p.read_bytes()
        if p.suffix == ".pdf":
            assert data.startswith(b"%PDF-") and b"/FontFile2" in data  # TrueType embedded
        else:
            root = ET.fromstring(data)
            assert root.tag.endswith("svg")
            assert "fc1 linear 9→16" in data.decode() or p.stem not in ("layers",)


def test_cli_figures_and_html(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from slt_deploy import save
    from slt_deploy.cli import user_errors
    from slt_deploy.energy.command import energy as energy_command

    app = typer.Typer()
    app.command("energy")(user_errors(energy_command))
    app.command("noop")(lambda: None)
    save(mlp(), tmp_path / "t.slt")
    np.save(tmp_path / "x.npy", np.random.default_rng(11).random((7, 9)))
    res = CliRunner().invoke(app, ["energy", str(tmp_path / "t.slt"), "--input", str(tmp_path / "x.npy"),
                                   "--figures", str(tmp_path / "f"), "--report", str(tmp_path / "r.html"),
                                   "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "f").glob("*.svg"))) == 5 and len(list((tmp_path / "f").glob("*.pdf"))) == 5
    assert "break-even" in res.stdout and "memory-aware" in res.stdout and "headline" in res.stdout


# ----------------------------------------------------------------------------- headless browser
def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("chromium / chromium-driver not installed (tools/bootstrap.sh installs them)")
    return browser, driver


def open_headless(tmp_path: Path):
    """A headless Chromium driven by chromedriver, offline, fresh profile, browser console logged."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (dev extra)")
    from selenium.webdriver.chrome.service import Service

    browser, driver = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def render(drv, page: Path, png: Path) -> list[dict]:
    """Load ``page``, screenshot the whole page into ``png``, return the browser's SEVERE console entries."""
    drv.get(page.as_uri())
    height = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(1200, min(int(height) + 100, 12000))
    png.write_bytes(drv.get_screenshot_as_png())
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def test_html_report_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ticket, x = conv(), np.random.default_rng(12).normal(size=(16, 2, 6, 6))
    page = tmp_path / "report.html"
    page.write_text(energy(ticket, x, profile="loihi").to_html(), encoding="utf-8")
    bad = tmp_path / "bad.html"  # the check itself works: a page with a script error is caught
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction()</script></body></html>")
    drv = open_headless(tmp_path)
    try:
        assert render(drv, bad, tmp_path / "bad.png"), "console errors are not captured"
        errors = render(drv, page, tmp_path / "report.png")
        assert errors == []
        svgs = drv.find_elements("css selector", "figure svg")
        assert len(svgs) == 5 and all(s.size["width"] > 300 and s.size["height"] > 150 for s in svgs)
        text = drv.find_element("tag name", "body").text
        for needle in ("Headline", "compute-only", "memory-aware", "Break-even spike rate", "ANN, dense upper bound"):
            assert needle in text
    finally:
        drv.quit()
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
