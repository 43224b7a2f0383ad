"""Corruption campaign over slt's loaders: seeded mutations of valid files, every case a fresh
process with a timeout and an address-space cap; the issue-17 table as JSON and Markdown.

    python tools/fuzz_campaign.py --cases 40 --json out.json --markdown out.md
    python tools/fuzz_campaign.py --cases 400 ...           # the full campaign (hours on 2 cores)

Kinds and what a case runs (in a child: ``python tools/fuzz_campaign.py --case KIND FILE``):

Each case is a seeded byte mutation of a valid file, or (``--edit-share``, default 1/3, for nir,
netx, onnx and checkpoint) a structured edit by tools/fuzz_edits.py (h5py / onnx / torch.save).

- ``slt``: ``slt_deploy.load`` + a reference run;  ``nir``: ``import_nir`` + run;
  ``onnx``: ``run_onnx_file``;  ``netx``: ``import_netx`` + run;
  ``checkpoint``: ``load_checkpoint`` (state dict and masks);  ``npy``: ``load_npy`` + run
  (header bytes only: the data of an ``.npy`` has no checksum, so changed values are the input);
  ``cli``: hostile argument values and output paths on every ``slt`` command (tools/fuzz_cli.py;
  ``unchanged`` there means exit 0 with no fixture touched, ``typed error`` one ``slt: error:``
  line naming the argument, exit 2).

Outcome of a case: ``typed error`` (an SltError, one line), ``unchanged`` (the same result digest
as the original), ``silent change`` (a different result, exit 0), ``other exception``, ``hang``
(over ``--timeout`` s), ``memory blow-up`` (MemoryError, or killed under the cap).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
TICKET = ROOT / "examples" / "digits-mlp-imp-binary.slt"
KINDS = ("slt", "nir", "onnx", "netx", "checkpoint", "npy", "cli")
OUTCOMES = ("typed error", "unchanged", "silent change", "other exception", "hang", "memory blow-up")
CAP = 8 << 30


def _x() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data[:16] / 16).astype(np.float32)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def run_case(kind: str, path: str) -> str:
    """The result digest of loading (and running) ``path``; raises what the loader raises."""
    import slt_deploy as slt

    if kind == "slt":
        return _digest(slt.run(slt.load(path), _x()).output)
    if kind == "nir":
        from slt_deploy.exporters.nir import import_nir

        return _digest(slt.run(import_nir(path), _x()).output)
    if kind == "onnx":
        from slt_deploy.targets.onnxruntime import run_onnx_file

        return _digest(run_onnx_file(path, _x()).output)
    if kind == "netx":
        from slt_deploy.exporters.netx import import_netx

        t = import_netx(path)
        return _digest(slt.run(t, np.ones((t.timesteps, 2, *t.input_shape), np.float32)).output)
    if kind == "checkpoint":
        from slt_deploy.importers.torch import load_checkpoint

        ck = load_checkpoint(path)
        keys = sorted(ck.state_dict)
        return _digest(*[ck.state_dict[k].numpy() for k in keys], *[ck.masks[k].numpy() for k in sorted(ck.masks)])
    if kind == "npy":
        from slt_deploy.untrusted import load_npy

        return _digest(slt.run(slt.load(TICKET), load_npy(path)).output)
    raise ValueError(kind)


def _child(kind: str, path: str) -> None:
    from slt_deploy.errors import SltError

    try:
        out = {"status": "ok", "digest": run_case(kind, path)}
    except SltError as exc:
        out = {"status": "typed", "one_line": "\n" not in str(exc)}
    except MemoryError:
        out = {"status": "memory"}
    except BaseException as exc:  # noqa: BLE001 - what the campaign counts
        out = {"status": "other", "type": type(exc).__name__, "text": str(exc)[:200]}
    print("RESULT " + json.dumps(out), flush=True)


def originals(folder: Path) -> dict[str, Path]:
    import torch
    from torch import nn
    from torch.nn.utils import prune

    import slt_deploy as slt

    t = slt.load(TICKET)
    out = {"slt": TICKET, "nir": folder / "m.nir", "onnx": folder / "m.onnx", "netx": folder / "m.net.h5",
           "checkpoint": folder / "m.pt", "npy": folder / "x.npy"}
    slt.export(t, out["nir"], to="nir")
    slt.export(t, out["onnx"], to="onnx")
    slt.export(t, out["netx"], to="netx")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    prune.l1_unstructured(net[0], "weight", amount=0.6)
    torch.save(net.state_dict(), out["checkpoint"])
    np.save(out["npy"], _x())
    return out


def mutate(data: bytes, rng: random.Random, kind: str) -> bytes:
    b = bytearray(data)
    span = min(len(b), 128) if kind == "npy" else len(b)
    op = rng.choice(("flip", "flip", "byte", "extreme", "truncate", "zero"))
    if op == "flip":
        for _ in range(rng.choice((1, 1, 2, 4))):
            b[rng.randrange(span)] ^= 1 << rng.randrange(8)
    elif op == "byte":
        b[rng.randrange(span)] = rng.randrange(256)
    elif op == "extreme":
        at = rng.randrange(max(span - 8, 1))
        b[at:at + 8] = rng.choice((b"\xff" * 8, b"\x7f\xf0\x00\x00\x00\x00\x00\x00"[::-1], b"\x00\x00\xc0\x7f" * 2))
    elif op == "truncate":
        b = b[:rng.randrange(len(b))] if kind != "npy" else b[:rng.randrange(span)]
    else:
        at, n = rng.randrange(span), rng.randrange(1, 64)
        b[at:at + n] = bytes(len(b[at:at + n]))
    return bytes(b)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def classify(kind: str, path: Path, want: str, timeout: float) -> tuple[str, str]:
    env = {**os.environ, "SLT_HDF5_TIMEOUT": str(max(timeout / 2, 1))}
    try:
        res = subprocess.run([sys.executable, __file__, "--case", kind, str(path)], capture_output=True, text=True,
                             timeout=timeout, preexec_fn=_limits, env=env)
    except subprocess.TimeoutExpired:
        return "hang", ""
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return ("memory blow-up" if res.returncode < 0 else "other exception"), res.stderr.strip()[-200:]
    out = json.loads(line[7:])
    if out["status"] == "typed":
        return ("typed error" if out["one_line"] else "other exception"), ""
    if out["status"] == "memory":
        return "memory blow-up", ""
    if out["status"] == "other":
        return "other exception", f"{out['type']}: {out['text']}"
    return ("unchanged" if out["digest"] == want else "silent change"), ""


import fuzz_edits  # noqa: E402 - tools/ is on sys.path above


def _cli(folder: Path, args: argparse.Namespace, notes: list[str]) -> dict[str, int]:
    """The ``cli`` kind: ``args.cases`` command lines from tools/fuzz_cli.py, every command in turn."""
    import fuzz_cli

    folder.mkdir()
    fuzz_cli.fixtures(folder)
    counts = dict.fromkeys(OUTCOMES, 0)
    n = args.cases if args.cli_cases is None else args.cli_cases
    for i, (arg, tok) in enumerate(fuzz_cli.pick(fuzz_cli.cases(folder), n, args.seed)):
        outcome, detail = fuzz_cli.classify(arg, tok, folder, args.timeout, CAP)
        counts[outcome] += 1
        if outcome not in ("typed error", "unchanged"):
            notes.append(f"case {i}: {outcome} {detail}")
            print(f"  case {i}: {outcome} {detail}", flush=True)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", nargs=2, metavar=("KIND", "FILE"))
    ap.add_argument("--cases", type=int, default=40, help="mutations per kind")
    ap.add_argument("--cli-cases", type=int, help="command lines of the cli kind (default --cases; 978 is all)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--edit-share", type=float, default=1 / 3,
                    help="share of the nir/netx/onnx/checkpoint cases that are structured edits (fuzz_edits.py)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if args.case:
        _child(*args.case)
        return
    table: dict[str, dict[str, int]] = {}
    notes: dict[str, list[str]] = {}
    edits: dict[str, int] = {}
    seconds: dict[str, int] = {}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = originals(folder)
        for kind in args.kinds.split(","):
            t0 = time.time()
            if kind == "cli":
                table[kind] = _cli(folder / "cli", args, notes.setdefault(kind, []))
            else:
                table[kind] = _kind(kind, files[kind], folder, args, notes, edits)
            seconds[kind] = round(time.time() - t0)
            print(kind, table[kind], f"{seconds[kind]} s", flush=True)
            _write(args, {"cases_per_kind": args.cases, "cli_cases": args.cli_cases, "seed": args.seed,
                          "timeout_s": args.timeout, "cap_bytes": CAP, "seconds": round(time.time() - started),
                          "seconds_per_kind": seconds, "table": table, "structured_edits": edits, "notes": notes})


def _kind(kind: str, original: Path, folder: Path, args: argparse.Namespace, notes: dict[str, list[str]],
          edits: dict[str, int]) -> dict[str, int]:
    """``args.cases`` byte mutations / structured edits of ``original``, each classified in a fresh process."""
    want = run_case(kind, str(original))
    data = original.read_bytes()
    rng = random.Random(f"{args.seed}-{kind}")
    counts = dict.fromkeys(OUTCOMES, 0)
    for i in range(args.cases):
        case = folder / f"case{i}{''.join(original.suffixes)}"
        edited = fuzz_edits.edit(kind, original, rng) if rng.random() < args.edit_share else None
        edits[kind] = edits.get(kind, 0) + (edited is not None)
        case.write_bytes(edited if edited is not None else mutate(data, rng, kind))
        outcome, detail = classify(kind, case, want, args.timeout)
        counts[outcome] += 1
        if outcome not in ("typed error", "unchanged"):
            how = "structured edit" if edited is not None else "byte mutation"
            notes.setdefault(kind, []).append(f"case {i} ({how}): {outcome} {detail}")
            print(f"  {kind} case {i} ({how}): {outcome} {detail}", flush=True)
    return counts


def _write(args: argparse.Namespace, report: dict[str, object]) -> None:
    """The report so far (after every kind, so a cut-short campaign keeps what it measured)."""
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.markdown:
        lines = ["| input | cases | " + " | ".join(OUTCOMES) + " | seconds |",
                 "|---|---|" + "---|" * (len(OUTCOMES) + 1)]
        for kind, counts in report["table"].items():  # type: ignore[attr-defined]
            lines.append(f"| {kind} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in OUTCOMES)
                         + f" | {report['seconds_per_kind'][kind]} |")  # type: ignore[index]
        Path(args.markdown).write_text("\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
