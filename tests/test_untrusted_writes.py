"""Writes: folders replaced in one step (renameat2 RENAME_EXCHANGE, or aside-and-recover), stale
temporaries of killed writers removed by the next write, only regular files and folders replaced,
and SIGKILL at random moments leaves the old or the complete new output (slow-marked)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slt_deploy.atomic import MANIFEST, atomic_write_bytes, clean_stale, replace_folder, seal_folder, temp_prefix
from slt_deploy.errors import SltError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("digits-mlp-*.slt"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_symlinks_devices_and_fifos_are_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "real.bin"
    target.write_bytes(b"keep")
    link = tmp_path / "link.slt"
    link.symlink_to(target)
    with pytest.raises(SltError, match="symbolic link"):
        atomic_write_bytes(link, b"new")
    assert target.read_bytes() == b"keep" and link.is_symlink()
    fifo = tmp_path / "pipe.slt"
    os.mkfifo(fifo)
    with pytest.raises(SltError, match="device, FIFO or socket"):
        atomic_write_bytes(fifo, b"new")
    with pytest.raises(SltError, match="device, FIFO or socket"):
        atomic_write_bytes("/dev/null", b"new")
    folder_link = tmp_path / "c_link"
    (tmp_path / "c_real").mkdir()
    folder_link.symlink_to(tmp_path / "c_real")
    with pytest.raises(SltError, match="symbolic link"):
        replace_folder(tmp_path / "c_real", folder_link)


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "t.slt"
    dead = _dead_pid()
    stale_file = tmp_path / f".t.slt.slt{dead}-abc.tmp"
    stale_dir = tmp_path / f".t.slt.slt{dead}-xyz"
    live = tmp_path / f"{temp_prefix(out)}live.tmp"
    for p in (stale_file, live):
        p.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "half.c").write_text("/* half */")
    atomic_write_bytes(out, b"data")
    assert out.read_bytes() == b"data"
    assert not stale_file.exists() and not stale_dir.exists() and live.exists()


def test_a_folder_left_aside_by_a_kill_is_put_back(tmp_path: Path) -> None:
    out = tmp_path / "c"
    aside = tmp_path / f".c.slt{_dead_pid()}-old"
    aside.mkdir()
    (aside / "net.h").write_text("old")
    clean_stale(out)
    assert (out / "net.h").read_text() == "old" and not aside.exists()


def test_replace_folder_swaps_in_one_step(tmp_path: Path) -> None:
    out, new = tmp_path / "c", tmp_path / "new"
    out.mkdir()
    (out / "a.h").write_text("old")
    seal_folder(out)
    new.mkdir()
    (new / "a.h").write_text("new")
    replace_folder(new, out)
    assert (out / "a.h").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.h"]


@pytest.mark.parametrize("case", ["no manifest", "added file", "added folder", "edited file", "bad manifest"])
def test_replace_folder_refuses_a_folder_slt_did_not_write(tmp_path: Path, case: str) -> None:
    out, new = tmp_path / "c", tmp_path / "new"
    out.mkdir()
    (out / "a.h").write_text("old")
    if case != "no manifest":
        seal_folder(out)
    if case == "added file":
        (out / "main.c").write_text("user's")
    elif case == "added folder":
        (out / "build").mkdir()
    elif case == "edited file":
        (out / "a.h").write_text("edited")
    elif case == "bad manifest":
        (out / MANIFEST).write_text("[" * 5000)
    def snap() -> dict[str, bytes | None]:
        return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(out.iterdir())}

    before = snap()
    new.mkdir()
    (new / "a.h").write_text("new")
    with pytest.raises(SltError, match="will not replace the folder"):
        replace_folder(new, out)
    assert snap() == before and (new / "a.h").read_text() == "new"
    empty = tmp_path / "empty"
    empty.mkdir()
    replace_folder(new, empty)  # an empty folder holds nothing to lose
    assert (empty / "a.h").read_text() == "new"


def test_demo_out_unwritable_is_one_line_naming_the_flag() -> None:
    res = subprocess.run([sys.executable, "-m", "slt_deploy", "demo", "--out", "/proc/x"], capture_output=True,
                         text=True, timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("slt: error: --out"), res.stderr


# ------------------------------------------------------------------ SIGKILL at random moments
KILLS = int(os.environ.get("SLT_KILL_RUNS", "6"))  # 100 for the acceptance run (docs/security.md)


def _snapshot(path: Path) -> dict[str, bytes] | bytes | None:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return path.read_bytes() if path.exists() else None


def _leftovers(path: Path) -> list[str]:
    return [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


WRITERS = {
    "export c": lambda src, out: ["export", str(src), "--to", "c", "-o", str(out), "--force", "--prefix", "net"],
    "export nir": lambda src, out: ["export", str(src), "--to", "nir", "-o", str(out)],
    "export onnx": lambda src, out: ["export", str(src), "--to", "onnx", "-o", str(out)],
    "export netx": lambda src, out: ["export", str(src), "--to", "netx", "-o", str(out)],
    "pack (save)": lambda src, out: ["pack", str(src), "-o", str(out)],
    "pack (save, 23 MB ticket)": lambda src, out: ["pack", str(src), "-o", str(out)],
}
SUFFIX = {"export c": "", "export nir": ".nir", "export onnx": ".onnx", "export netx": ".net.h5",
          "pack (save)": ".slt", "pack (save, 23 MB ticket)": ".slt"}


def _large_tickets(folder: Path) -> tuple[Path, Path]:
    """Two dense float32 784-2048-2048-10 snnTorch tickets (23.3 MB each) with different weights."""
    import snntorch as snn
    import torch
    from torch import nn

    import slt_deploy as slt

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(784, 2048), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(2048, 2048),
                            snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(2048, 10),
                            snn.Leaky(beta=0.9, init_hidden=True, output=True))
        path = folder / f"large{seed}.slt"
        slt.save(slt.from_torch(net, torch.zeros(1, 784), timesteps=8), path)
        paths.append(path)
    return paths[0], paths[1]


def _timing(cmd: list[str], out: Path) -> tuple[float, float]:
    """Wall time of one write and when its first temporary appeared (polled every 2 ms; 0.9 x the
    wall time if none was seen)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writing = None
    while proc.poll() is None:
        if writing is None and _leftovers(out):
            writing = time.perf_counter() - t0
        time.sleep(0.002)
    span = time.perf_counter() - t0
    assert proc.returncode == 0
    return span, min(writing if writing is not None else 0.9 * span, span)


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(WRITERS))
def test_sigkill_leaves_the_old_or_the_complete_new_output(tmp_path: Path, writer: str) -> None:
    old_src, new_src = _large_tickets(tmp_path) if "MB" in writer else (EXAMPLES[0], EXAMPLES[1])
    out = tmp_path / f"out{SUFFIX[writer]}"
    cli = [sys.executable, "-m", "slt_deploy"]

    def write(src: Path, where: Path) -> None:
        res = subprocess.run([*cli, *WRITERS[writer](src, where)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr

    ref = tmp_path / f"ref{SUFFIX[writer]}"
    write(new_src, ref)
    new = _snapshot(ref)
    write(old_src, out)
    old = _snapshot(out)
    assert old != new
    rng = random.Random(f"{writer}-17")
    span, writing = _timing([*cli, *WRITERS[writer](new_src, tmp_path / f"timing{SUFFIX[writer]}")],
                            tmp_path / f"timing{SUFFIX[writer]}")
    seen = {"old": 0, "new": 0, "temporaries left by the kill": 0}
    for _ in range(KILLS):
        proc = subprocess.Popen([*cli, *WRITERS[writer](new_src, out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # half the kills anywhere in 30-100 % of the run, half in the writing phase (first temporary to exit)
        time.sleep(rng.uniform(0.3, 1.0) * span if rng.random() < 0.5 else rng.uniform(writing, span))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen["temporaries left by the kill"] += bool(_leftovers(out))
        clean_stale(out)  # what the next run does first
        got = _snapshot(out)
        assert got in (old, new), f"{writer}: a kill left neither the old nor the new output"
        seen["old" if got == old else "new"] += 1
        assert not _leftovers(out), _leftovers(out)
        write(old_src, out)  # back to the old output for the next kill
    write(new_src, out)
    assert _snapshot(out) == new and not _leftovers(out)
    # the figures in docs/security.md (pytest -s)
    print(f"{writer}: {KILLS} kills (run {span:.2f} s, writing from {writing:.2f} s): {seen}")
