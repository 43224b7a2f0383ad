"""The ``cli`` kind of tools/fuzz_campaign.py: hostile argument values on every ``slt`` command.

A case is one command line: a valid base invocation of a command (pack, run, verify, energy,
export, inspect, demo, search, bench) with one argument replaced by a hostile value of its kind:

- input paths: empty, ``/proc/self/mem``, ``/dev/zero``, ``/dev/urandom``, a FIFO, a folder, a
  dangling symlink, a symlink loop, a 5 GiB sparse file, a name of 300 bytes, a newline or an
  RTL override in the name, undecodable bytes (``\\xff``), the wrong kind of file;
- output paths: ``/proc/x``, ``/proc/self/status``, ``/sys/x``, ``/dev/null``, ``/dev/full``, a
  FIFO, a non-empty folder, a symlink (to a file / dangling), a missing parent, a regular file
  used as a parent, a name of 300 bytes, a newline in the name (root ignores permission bits,
  so ``/proc`` and ``/sys`` stand for read-only places);
- integers, floats and strings: empty, negative, 0, 2^63, 10^23, ``nan``, ``inf``, ``1e999``,
  subnormals, Arabic-Indic digits, 5000 characters, undecodable bytes.

Outcome (the issue-17 table's columns): ``unchanged`` = exit 0 and no fixture touched;
``typed error`` = exit 2 and stderr exactly one ``slt: error:`` line (``slt: warning:`` lines
aside) naming the argument (its flag, or for a positional argument its value);
``silent change`` = a fixture (FIFO, symlink, its target, a folder the case did not own, a
device node) changed or vanished (new files a case writes are its output, removed after it);
``other exception`` = a traceback, several lines, another exit status,
or an error line that does not name the argument; ``hang`` = over the timeout;
``memory blow-up`` = ``MemoryError`` or killed by a signal under the address-space cap.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKET = ROOT / "examples" / "digits-mlp-imp-binary.slt"
INTS = ["0", "-1", "9223372036854775808", "99999999999999999999999", "nan", "", "1.5", "\u0661\u0662", "0x10"]
FLOATS = ["nan", "inf", "-inf", "-1", "0", "1e308", "1e-320", "", "1e999"]
STRS = ["", " ", "\u202e", "a" * 5000, "nan", "-1", "../../etc/passwd", "\xe9\u0301", b"\xff"]
IN_PATHS = ["", "/proc/self/mem", "/dev/zero", "/dev/urandom", "@fifo", "@folder", "@dangling", "@loop", "@sparse",
            "@long", "@newline", "@rtl", b"\xff.slt", "@npy", "@ticket_link"]
OUT_PATHS = ["", "/proc/x", "/proc/self/status", "/sys/x", "/dev/null", "/dev/full", "@fifo", "@folder",
             "@file_link", "@dangling", "@missing_parent", "@under_file", "@long", "@newline", "/"]


@dataclass(frozen=True)
class Arg:
    """One argument of a command: its flag (None: positional at ``index`` of the base), kind, extra flags."""

    command: str
    flag: str | None
    kind: str  # int, float, str, in, out
    extra: tuple[str, ...] = ()
    index: int = 1
    aliases: tuple[str, ...] = ()


def _args() -> list[Arg]:
    a: list[Arg] = []
    add = a.append
    for cmd in ("pack", "run", "verify", "energy", "export", "inspect", "bench"):
        add(Arg(cmd, None, "in"))
    add(Arg("pack", "-o", "out", aliases=("--output",)))
    for flag, kind in (("-T", "int"), ("--dt", "float"), ("--input-shape", "str"), ("--encoding", "str"),
                       ("--seed", "int"), ("--arch", "str")):
        add(Arg("pack", flag, kind, aliases=("--timesteps",) if flag == "-T" else ()))
    add(Arg("run", "-i", "in", aliases=("--input",)))
    add(Arg("run", "-o", "out", aliases=("--output",)))
    for flag, kind, target in (("--target", "str", None), ("--precision", "str", None), ("--backend", "str", "cpu"),
                               ("--threads", "int", "cpu"), ("--kernel", "str", "cpu"), ("--device", "str", "torch"),
                               ("--synapse", "str", "lava"), ("--input-frac-bits", "int", "lava"),
                               ("--max-memory", "str", None)):
        add(Arg("run", flag, kind, ("--target", target) if target else ()))
    add(Arg("verify", "-i", "in", aliases=("--input",)))
    add(Arg("verify", "--targets", "str"))
    add(Arg("energy", "-i", "in", aliases=("--input",)))
    for flag, kind in (("--profile", "str"), ("--profile", "in"), ("--convention", "str"), ("--ann", "in"),
                       ("--ann-input", "in"), ("--ann-sparsity", "float"), ("--report", "out"),
                       ("--figures", "out"), ("--batch-size", "int")):
        add(Arg("energy", flag, kind))
    add(Arg("export", "--to", "str"))
    for to in ("onnx", "nir", "netx", "c"):
        add(Arg("export", "-o", "out", ("--to", to), aliases=("--output",)))
    for flag, kind, to in (("--dt", "float", "nir"), ("--mode", "str", "onnx"), ("--weights", "str", "onnx"),
                           ("--prefix", "str", "c"), ("--arith", "str", "c"), ("--word", "int", "c"),
                           ("--board", "str", "c"), ("--calibrate", "in", "c")):
        extra = ("--to", to, "--arith", "fixed") if flag == "--calibrate" else ("--to", to)
        add(Arg("export", flag, kind, extra))
    add(Arg("bench", "-i", "in", aliases=("--input",)))
    add(Arg("bench", "--targets", "str"))
    add(Arg("bench", "--repeats", "int"))
    add(Arg("demo", "--out", "out"))
    add(Arg("demo", "--ticket", "in"))
    add(Arg("demo", "--model", "str"))
    for flag in ("--rounds", "--epochs", "--seed"):
        add(Arg("demo", flag, "int", ("--retrain",)))
    add(Arg("search", "--out", "out", aliases=("-o",)))
    add(Arg("search", "--log", "out"))
    for flag, kind in (("--method", "str"), ("--data", "str"), ("--data", "in"), ("--arch", "str"),
                       ("--encoding", "str"), ("--rounds", "int"), ("--epochs", "int"), ("--hidden", "int"),
                       ("--prune-fraction", "float"), ("--target-sparsity", "float"), ("-T", "int"),
                       ("--seed", "int"), ("--batch-size", "int"), ("--lr", "float"), ("--channels", "str"),
                       ("--rewind-epoch", "int"), ("--binary-epochs", "int"), ("--threads", "int"),
                       ("--device", "str"), ("--amp", "str"), ("--check-samples", "int"), ("--workers", "int"),
                       ("--width", "float"), ("--token-keep", "float"), ("--et-threshold", "float"),
                       ("--eb-window", "int"), ("--keep-synapses", "float"), ("--trials", "int"),
                       ("--clusters", "int")):
        extra = {"--target-sparsity": ("--method", "eb"), "--eb-window": ("--method", "eb"),
                 "--keep-synapses": ("--method", "lnp", "--trials", "1"),
                 "--trials": ("--method", "lnp"), "--clusters": ("--method", "lnp", "--trials", "1"),
                 "--width": ("--arch", "vgg16"),
                 "--token-keep": ("--arch", "spikformer"), "--et-threshold": ("--method", "et"),
                 "--binary-epochs": ("--binary",)}.get(flag, ())
        add(Arg("search", flag, kind, extra, aliases=("--timesteps",) if flag == "-T" else ()))
    return a


def base(command: str, d: Path) -> list[str | bytes]:
    """A valid invocation of ``command`` writing into ``d/out``."""
    o, t, x = d / "out", str(TICKET), str(d / "x.npy")
    return {
        "pack": ["pack", t, "-o", str(o / "p.slt")],
        "run": ["run", t, "-i", x, "-o", str(o / "r.npz")],
        "verify": ["verify", t, "-i", x, "--targets", "reference,cpu"],
        "energy": ["energy", t, "-i", x],
        "export": ["export", t, "--to", "onnx", "-o", str(o / "e.onnx")],
        "inspect": ["inspect", t],
        "bench": ["bench", t, "-i", x, "--targets", "reference", "--repeats", "2"],
        "demo": ["demo", "--out", str(o / "demo"), "--epochs", "1", "--rounds", "1"],
        "search": ["search", "--out", str(o / "s.slt"), "--epochs", "1", "--rounds", "1", "--hidden", "8"],
    }[command]


def fixtures(d: Path) -> None:
    """The hostile files a case may name, in ``d`` (made once per campaign; checked after every case)."""
    import numpy as np
    from sklearn.datasets import load_digits

    np.save(d / "x.npy", (load_digits().data[:4] / 16).astype(np.float32))
    os.mkfifo(d / "fifo")
    (d / "folder").mkdir()
    (d / "folder" / "keep.txt").write_text("not slt's")
    (d / "target.txt").write_text("a file a symlink points at")
    (d / "file_link").symlink_to(d / "target.txt")
    (d / "ticket_link.slt").symlink_to(TICKET)
    (d / "dangling").symlink_to(d / "nowhere")
    (d / "loop").symlink_to(d / "loop")
    with open(d / "sparse.slt", "wb") as f:
        f.truncate(5 << 30)
    (d / "regular").write_text("a regular file")


def value(token: str | bytes, d: Path) -> str | bytes:
    """The argument text of a hostile ``token`` (``@name``: a fixture in ``d``)."""
    if isinstance(token, bytes):
        return os.fsencode(d) + b"/" + token if token.endswith(b".slt") else token
    if not token.startswith("@"):
        return token
    name = token[1:]
    named = {"long": d / ("n" * 300 + ".slt"), "newline": d / "new\nline.slt", "rtl": d / "t\u202eicket.slt",
             "missing_parent": d / "no" / "such" / "x.slt", "under_file": d / "regular" / "x.slt",
             "npy": d / "x.npy", "ticket_link": d / "ticket_link.slt", "sparse": d / "sparse.slt"}
    return str(named.get(name, d / name))


def cases(d: Path) -> list[tuple[Arg, str | bytes]]:
    """Every (argument, hostile token) pair."""
    pools = {"int": INTS, "float": FLOATS, "str": STRS, "in": IN_PATHS, "out": OUT_PATHS}
    return [(arg, tok) for arg in _args() for tok in pools[arg.kind]]


def pick(all_cases: list[tuple[Arg, str | bytes]], n: int, seed: int) -> list[tuple[Arg, str | bytes]]:
    """``n`` cases, every command and argument in turn (round robin over a seeded shuffle)."""
    rng = random.Random(f"{seed}-cli")
    by_arg: dict[Arg, list[str | bytes]] = {}
    for arg, tok in all_cases:
        by_arg.setdefault(arg, []).append(tok)
    for toks in by_arg.values():
        rng.shuffle(toks)
    by_cmd: dict[str, list[Arg]] = {}
    for arg in by_arg:
        by_cmd.setdefault(arg.command, []).append(arg)
    out: list[tuple[Arg, str | bytes]] = []
    rnd = 0
    while len(out) < min(n, len(all_cases)):
        for args in by_cmd.values():
            for arg in args[rnd % len(args):] + args[:rnd % len(args)]:
                toks = by_arg[arg]
                if toks:
                    out.append((arg, toks.pop()))
                    break
        rnd += 1
    return out[:n]


def command_line(arg: Arg, tok: str | bytes, d: Path) -> list[str | bytes]:
    cmd = base(arg.command, d)
    v = value(tok, d)
    if arg.flag is None:
        cmd[arg.index] = v
    elif arg.flag in cmd:
        cmd[cmd.index(arg.flag) + 1] = v
    else:
        cmd += [arg.flag, v]
    extra, i = list(arg.extra), 0
    while i < len(extra):
        flag, val = extra[i], extra[i + 1] if i + 1 < len(extra) and not extra[i + 1].startswith("-") else None
        if val is not None and flag in cmd:
            cmd[cmd.index(flag) + 1] = val
        elif flag not in cmd:
            cmd += [flag] if val is None else [flag, val]
        i += 1 if val is None else 2
    return cmd


def _state(d: Path) -> dict[str, object]:
    """Type, link target and bytes of every fixture (the case's own output folder excluded), and of /dev nodes."""
    out: dict[str, object] = {}
    for p in sorted(d.rglob("*")):
        if p.parts[len(d.parts)] == "out":
            continue
        st = os.lstat(p)
        size_or_bytes = p.read_bytes() if stat.S_ISREG(st.st_mode) and st.st_size < 1 << 20 else st.st_size
        out[str(p)] = (stat.S_IFMT(st.st_mode), os.readlink(p) if p.is_symlink() else size_or_bytes)
    for dev in ("/dev/null", "/dev/full", "/dev/zero", "/dev/urandom"):
        out[dev] = stat.S_IFMT(os.lstat(dev).st_mode), os.lstat(dev).st_rdev
    return out


def _limits(cap: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.setsid()


def _names(arg: Arg, tok: str | bytes, v: str | bytes, line: str) -> bool:
    """Does the error line name the fuzzed argument (or a flag the case added to its base, such as
    ``--arch vgg16`` for ``--width``, whose own refusal may come first)?"""
    if any(f.startswith("-") and f in line for f in arg.extra):
        return True
    if arg.flag is None:
        text = os.fsdecode(v) if isinstance(v, bytes) else v
        return text in line or str(Path(text)) in line or repr(text)[1:-1] in line
    return any(f in line for f in (arg.flag, *arg.aliases))


def classify(arg: Arg, tok: str | bytes, d: Path, timeout: float, cap: int) -> tuple[str, str]:
    """Run one case in a fresh process; its outcome and a note."""
    out = d / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    before = _state(d)
    cmd = command_line(arg, tok, d)
    env = {**os.environ, "SLT_HDF5_TIMEOUT": str(max(timeout / 2, 1)), "COLUMNS": "100",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "slt_deploy", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=out, env=env,
                            preexec_fn=lambda: _limits(cap))
    note = f"{arg.command} {arg.flag or 'ARG'}={tok!r}"
    try:
        _, err_b = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "hang", note
    err = err_b.decode("utf-8", "replace")
    note += f": rc {proc.returncode}: {err.strip()[-300:]}"
    after = _state(d)
    for extra in sorted(set(after) - set(before), key=len, reverse=True):  # what the case created: its output
        p = Path(extra)
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if any(after.get(k) != v for k, v in before.items()):
        return "silent change", note
    if "MemoryError" in err or proc.returncode < 0:
        return "memory blow-up", note
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("slt: warning:")]
    if proc.returncode == 0 and "Traceback" not in err:
        return "unchanged", ""
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("slt: error:"):
        return ("typed error", "") if _names(arg, tok, value(tok, d), lines[0]) else ("other exception",
                                                                                       "flag not named: " + note)
    return "other exception", note
