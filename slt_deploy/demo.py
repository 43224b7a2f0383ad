"""`slt demo`: the whole path on the built-in digits example, in one command.

1. the ticket: the committed example ``examples/digits-mlp-imp-binary.slt`` (a binary,
   ~92%-sparse IMP ticket for scikit-learn's digits), or with ``retrain=True`` a fresh
   search (IMP with late rewinding, binary fine-tune; :mod:`slt_deploy.search`);
2. inspect it (bits per synapse against the entropy bound);
3. export it to NIR, ONNX, lava-dl netx and C where the exporter accepts it (a refusal is
   reported with its reason, never papered over);
4. run it on every available target and verify them against each other (agreement matrix);
5. count its synaptic operations on the test split and write the energy report;
6. print a short summary and where everything went.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .errors import SltError, SltUnsupportedError

EXAMPLE_TICKET = "digits-mlp-imp-binary.slt"

def verify_targets() -> list[str]:
    """Every registered target whose arithmetic is exact by design (float32 or Loihi fixed point)."""
    return [n for n, s in registry.TARGETS.items() if s.arithmetic is not registry.Arithmetic.APPROXIMATE]

VERIFY_SAMPLES = 24  # Lava's simulator is slow: the agreement matrix uses the first test digits
EXPORTS = (("nir", "digits.nir"), ("onnx", "digits.onnx"), ("netx", "digits.net.h5"), ("c", "c"))
APPROXIMABLE = ("nir", "netx")  # formats that can state the ticket only approximately, with a report


def example_ticket_path() -> Path | None:
    """The committed example ticket next to the package (a source checkout), if present."""
    path = Path(__file__).resolve().parent.parent / "examples" / EXAMPLE_TICKET
    return path if path.is_file() else None


def load_digits_split(split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits split the search and the example tickets use (x in [0, 1], steps of 1/16)."""
    from .search.data import load_dataset

    d = load_dataset("digits", split_seed=split_seed)
    return d.x_train, d.y_train, d.x_test, d.y_test


def run_demo(out: Path = Path("slt-demo"), retrain: bool = False, ticket_path: Path | None = None,
             rounds: int = 9, epochs: int = 8, seed: int = 0, console: Any = None) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also written to ``out/summary.json``)."""
    say = console.print if console is not None else (lambda *a, **k: None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".slt-demo-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise SltError(f"--out {out}: cannot write there ({exc.strerror or type(exc).__name__}); give a writable "
                       "folder") from None
    started = time.perf_counter()
    summary: dict[str, Any] = {"out": str(out)}
    slt_path = out / "digits.slt"
    ticket, layers, source = _ticket_step(out, slt_path, retrain, ticket_path, rounds, epochs, seed, console,
                                          say, summary)
    _, _, x_test, y_test = load_digits_split(0)
    x_test = _shaped_for(ticket, x_test)
    np.save(out / "digits_test_x.npy", x_test)
    np.save(out / "digits_test_y.npy", y_test)
    _inspect_step(out, slt_path, layers, say, summary)
    summary["exports"] = _export_step(ticket, out, say)
    _verify_step(ticket, out, x_test, y_test, console, say, summary)
    _energy_step(ticket, out, slt_path, source, x_test, say, summary)

    summary["seconds"] = round(time.perf_counter() - started, 1)
    _write_json(out / "summary.json", summary)
    say(f"[bold]done[/] in {summary['seconds']} s. Everything is in {out}/: digits.slt, inspect.json, "
        "exports, verify.json, energy.html, energy.json, summary.json. Next:")
    say(f"   slt inspect {slt_path}")
    say(f"   slt verify {slt_path} --input {out / 'digits_test_x.npy'} --targets reference,cpu,onnxruntime")
    say(f"   slt energy {slt_path} --input {out / 'digits_test_x.npy'} --convention memory-aware")
    return summary


def _shaped_for(ticket: Any, x: np.ndarray) -> np.ndarray:
    """The 8x8 digits as the ticket takes them: 64 features, or an image such as (1, 8, 8)."""
    shape = tuple(ticket.input_shape)
    if int(np.prod(shape)) != x.shape[1] or ticket.encoding.kind == "spikes":
        raise SltError(f"--ticket: the demo feeds scikit-learn's 8x8 digits (64 values per sample, direct or rate "
                       f"input); this ticket takes {ticket.encoding.kind} input of shape {shape}")
    return np.ascontiguousarray(x.reshape(len(x), *shape))


def _write_json(path: Path, payload: Any) -> None:
    from .atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(payload, indent=2, default=_plain).encode())


def _ticket_step(out: Path, slt_path: Path, retrain: bool, ticket_path: Path | None, rounds: int, epochs: int,
                 seed: int, console: Any, say: Any, summary: dict[str, Any]) -> tuple[Any, Any, Path | None]:
    """1. The ticket: the committed example (read and verified once), a given one, or a fresh search."""
    from .format import inspect_file

    source = ticket_path or (None if retrain else example_ticket_path())
    if source is None:
        say(f"[bold]1. search[/]: IMP with late rewinding, {rounds} rounds of 25%, binary fine-tune (digits)")
        _search(slt_path, rounds=rounds, epochs=epochs, seed=seed, console=console)
        summary["ticket_source"] = "search (--retrain)"
        ticket, layers = inspect_file(slt_path)
    else:
        say(f"[bold]1. ticket[/]: {source}")
        ticket, layers = inspect_file(source)  # read and verified once; a bad file is never copied
        shutil.copyfile(source, slt_path)
        summary["ticket_source"] = str(source)
    return ticket, layers, source


def _inspect_step(out: Path, slt_path: Path, layers: Any, say: Any, summary: dict[str, Any]) -> None:
    """2. Sizes: bytes on disk, bits per synapse against the entropy bound."""
    weight_bytes = sum(r["bytes"] for r in layers)
    dense_bytes = sum(int(np.prod(r["shape"])) * 4 for r in layers)
    _write_json(out / "inspect.json", layers)
    summary["layers"] = layers
    summary["slt_file_bytes"] = slt_path.stat().st_size
    summary["weight_bytes"], summary["dense_fp32_weight_bytes"] = weight_bytes, dense_bytes
    say(f"[bold]2. inspect[/]: {slt_path.stat().st_size:,} bytes on disk, weights {weight_bytes:,} bytes "
        f"vs {dense_bytes:,} dense fp32 ({dense_bytes / max(weight_bytes, 1):.0f}x smaller)")
    for r in layers:
        say(f"   {r['name']:>8} {'x'.join(map(str, r['shape'])):>9} density {r['density']:.3f} {r['encoding']:>11} "
            f"{r['bits_per_synapse']:.3f} bits/synapse ({r['ratio_vs_entropy_bound']:.2f}x the bound H(p)+p)")


def _export_step(ticket: Any, out: Path, say: Any) -> dict[str, Any]:
    """3. Every export format; a refusal is reported with its reason (and written flagged where allowed)."""
    from . import api

    say("[bold]3. export[/]")
    exports: dict[str, Any] = {}
    for fmt, name in EXPORTS:
        target = out / name
        options = {"force": True, "prefix": "digits"} if fmt == "c" else {}
        try:
            report = api.export(ticket, target, to=fmt, **options)
            exports[fmt] = {"path": str(target), "exact": True, "report": report}
            say(f"   {fmt:>5}: {target}{_how_to_read(fmt, report)}")
        except SltUnsupportedError as exc:
            reason = str(exc).splitlines()[0]
            exports[fmt] = {"path": None, "exact": False, "refused": reason}
            if fmt in APPROXIMABLE:  # write it anyway, flagged: the reason is the first thing reported
                try:
                    exports[fmt]["report"] = api.export(ticket, target, to=fmt, allow_approximate=True)
                    exports[fmt]["path"] = str(target)
                except (SltError, ImportError) as again:
                    exports[fmt]["error"] = str(again).splitlines()[0]
            done = f"written APPROXIMATELY to {target}" if exports[fmt]["path"] else "not written"
            say(f"   {fmt:>5}: [yellow]{done}[/]: {_short(reason)}")
        except (SltError, ImportError) as exc:
            exports[fmt] = {"path": None, "exact": False, "error": str(exc).splitlines()[0]}
            say(f"   {fmt:>5}: [yellow]not exported[/]: {_short(str(exc))}")
    return exports


def _how_to_read(fmt: str, report: Any) -> str:
    """What a reader of the exported file must know to get the ticket's spikes (empty when nothing)."""
    if not isinstance(report, dict):
        return ""
    if fmt == "netx" and report.get("lava_dl_options"):
        options = ", ".join(f"{k}={v}" for k, v in report["lava_dl_options"].items())
        return f" (exact; load with netx.hdf5.Network(..., {options}))"
    if fmt == "nir":
        notes = report.get("consumer_notes") or []
        return (f" (exact; {len(notes)} note(s) on how snnTorch's import_from_nir reads it in summary.json)" if notes
                else " (exact; snnTorch's import_from_nir reads it as written)")
    return ""


def _verify_step(ticket: Any, out: Path, x_test: np.ndarray, y_test: np.ndarray, console: Any, say: Any,
                 summary: dict[str, Any]) -> None:
    """4. Every exact-by-design target on the same digits: the agreement matrix, and test accuracy."""
    from . import api
    from .verify import verify

    say(f"[bold]4. verify[/]: {', '.join(verify_targets())} on the first {VERIFY_SAMPLES} test digits")
    report = verify(ticket, x_test[:VERIFY_SAMPLES], verify_targets(),
                    progress=lambda name: say(f"   running {name} ..."))
    _write_json(out / "verify.json", report.to_dict())
    if console is not None:
        from .cli.render import print_verify

        print_verify(report, notes=False)
        say(f"   conversion notes per target (why Lava's integers differ, etc.): {out / 'verify.json'}")
    summary["verify"] = {"ok": report.ok, "path": str(out / "verify.json")}
    accuracy = {}
    for target in (registry.REFERENCE.name, registry.CPU.name):
        try:
            result = api.run(ticket, x_test, target=target, record=False)
            accuracy[target] = float((result.predictions() == y_test).mean())
        except (SltError, ImportError) as exc:
            accuracy[target] = str(exc).splitlines()[0]
    summary["accuracy"] = accuracy
    say(f"   test accuracy ({len(y_test)} digits): " + ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in accuracy.items()))


def _energy_step(ticket: Any, out: Path, slt_path: Path, source: Path | None, x_test: np.ndarray, say: Any,
                 summary: dict[str, Any]) -> None:
    """5. Effective ACs/MACs counted from the run, against the measured ANN twin when there is one."""
    from .atomic import atomic_write_bytes
    from .energy import energy
    from .energy.ann import available_twin

    twin = available_twin(source)  # the example ticket's trained ANN twin: the measured baseline
    energy_report = energy(ticket, x_test, profile="cmos45-fp32", convention="neurobench", ann=twin)
    energy_report.ticket_info["name"] = slt_path.name
    atomic_write_bytes(out / "energy.html", energy_report.to_html().encode("utf-8"))
    atomic_write_bytes(out / "energy.json", energy_report.to_json().encode("utf-8"))
    savings = {s.baseline: s.ratio for s in energy_report.savings()}
    summary["energy"] = {
        "profile": "cmos45-fp32", "convention": "neurobench",
        "effective_ac_per_inference": energy_report.effective_ac,
        "effective_mac_per_inference": energy_report.effective_mac,
        "ticket_pj_per_inference": energy_report.total(), "savings": savings,
        "savings_memory_aware": {s.baseline: s.ratio for s in energy_report.savings("memory-aware")},
        "ann": energy_report.assumption(), "html": str(out / "energy.html"), "json": str(out / "energy.json"),
    }
    say(f"[bold]5. energy[/] (cmos45-fp32, neurobench): {energy_report.effective_ac:,.0f} ACs + "
        f"{energy_report.effective_mac:,.0f} MACs per inference, {energy_report.total() / 1000:.1f} nJ; "
        f"{energy_report.headline('neurobench')}, {energy_report.headline('memory-aware')}")


def _search(path: Path, rounds: int, epochs: int, seed: int, console: Any) -> None:
    try:
        from .search import SearchConfig, run_search
    except ImportError:
        raise SltError("--retrain trains a network and needs PyTorch: pip install 'slt-deploy[torch]'") from None
    config = SearchConfig(method="imp", arch="mlp", rounds=rounds, epochs=epochs, binary=True, seed=seed)
    run_search(config, path, console=console, threads=1)


def _short(text: str, limit: int = 160) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _plain(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (Path, tuple)):
        return str(o) if isinstance(o, Path) else list(o)
    return str(o)
