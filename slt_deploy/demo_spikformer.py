"""`slt demo --model spikformer`: the committed MultiSp spiking-transformer ticket, end to end.

Loads ``examples/spikformer/digits-spikformer-multisp.slt`` (or ``--ticket``), runs the 360 test digits
on reference, cpu, torch and onnxruntime and checks that every node's values agree bit for
bit, exports it to ONNX (NIR is refused by name: NIR 1.0 has no attention primitive), and
counts its energy per layer and head (:func:`slt_deploy.energy.attention.attention_energy`).
Writes ``summary.json``, ``spikformer.onnx`` and the test inputs to ``out``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SltError

EXAMPLE = "digits-spikformer-multisp.slt"


def example_path() -> Path | None:
    path = Path(__file__).resolve().parent.parent / "examples" / "spikformer" / EXAMPLE
    return path if path.is_file() else None


def run_spikformer_demo(out: Path, ticket_path: Path | None = None, console: Any = None) -> dict[str, Any]:
    """Run the spiking-transformer demo into ``out``; returns the summary (also ``out/summary.json``)."""
    from . import api, registry
    from .demo import load_digits_split
    from .energy.attention import attention_energy

    say = console.print if console is not None else (lambda *a, **k: None)
    started = time.perf_counter()
    path = ticket_path or example_path()
    if path is None:
        raise SltError(f"no spikformer ticket: examples/spikformer/{EXAMPLE} is not next to the package; "
                       "pass --ticket")
    out.mkdir(parents=True, exist_ok=True)
    ticket = api.load(path)
    kinds = sorted({n.kind for n in ticket.nodes})
    say(f"[bold]1. ticket[/] {path}: {len(ticket.nodes)} nodes ({', '.join(kinds)}), T={ticket.timesteps}")
    _, _, x_test, y_test = load_digits_split(0)
    x = np.asarray(x_test, np.float32).reshape(-1, *ticket.input_shape)
    np.save(out / "digits_test_x.npy", x)
    summary: dict[str, Any] = {"ticket": str(path), "kinds": kinds, "targets": {}}
    reference = registry.REFERENCE.name
    ref = api.run(ticket, x, target=reference, record=True)
    for target in registry.exact_targets(registry.Arithmetic.FLOAT32_EXACT):  # reference, cpu, torch, onnxruntime
        spec = registry.target(target)
        if not spec.available():
            summary["targets"][target] = "not installed"
            continue
        got = ref if target == reference else api.run(ticket, x, target=target, record=True)
        same = all(np.array_equal(got.layers[n], v) for n, v in ref.layers.items())
        acc = float(np.mean(got.predictions() == y_test))
        summary["targets"][target] = {"accuracy": acc, "identical_to_reference": same}
        say(f"[bold]2. run[/] {target:12s} accuracy {acc:.4f}  every node identical to the reference: {same}")
    api.export(ticket, out / "spikformer.onnx", "onnx")
    try:
        api.export(ticket, out / "spikformer.nir", "nir")
        summary["nir"] = "exported"
    except SltError as exc:
        summary["nir"] = f"refused: {exc}"
    say(f"[bold]3. export[/] onnx -> {out / 'spikformer.onnx'}; nir: {summary['nir']}")
    e = attention_energy(ticket, x)
    summary["energy"] = {"ac": e.ac, "mac": e.mac, "neurobench_pj": e.total("neurobench"),
                         "spikformer_pj": e.total("spikformer"),
                         "layers": [{"name": lay.name, "kind": lay.kind, "ac": lay.ac, "mac": lay.mac,
                                     "per_head": list(lay.per_head), "tokens": lay.tokens} for lay in e.layers]}
    say(f"[bold]4. energy[/] {e.ac:,.0f} ACs + {e.mac:,.0f} MACs per inference: {e.total('neurobench'):,.0f} pJ "
        f"(neurobench), {e.total('spikformer'):,.0f} pJ (spikformer), 45 nm fp32")
    for lay in e.layers:
        heads = f"  heads {', '.join(f'{v:,.0f}' for v in lay.per_head)}" if lay.per_head else ""
        say(f"      {lay.name:24s} {lay.kind:7s} {lay.ac:>10,.0f} AC {lay.mac:>9,.0f} MAC  "
            f"{lay.tokens:>2} tokens{heads}")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


__all__ = ["EXAMPLE", "example_path", "run_spikformer_demo"]
