"""Data-parallel ticket search: real ``torchrun`` launches, two processes on the CPU (gloo).

Each launch is a full search on scikit-learn's digits (1437 train / 360 test, a 64-64-10
MLP, T = 4, two epochs per round) and compares against an independent single-process run
of the same options and global batch size, and against the hash log every rank writes.

Accuracy noise: the single-process ticket of these options over seeds 0-5 scored
IMP 0.919, 0.928, 0.911, 0.942, 0.947, 0.939 (sd 0.014) and ET 0.906, 0.928, 0.908, 0.914,
0.919, 0.894 (sd 0.012) on the reference simulator. Two processes shuffle the same global
batches but sum gradients in another order and pad the last batch, so the spiking
trajectories diverge like another seed's; the tests allow |DDP - single| <= NOISE = 0.05
(about 2.5 sd of the difference of two runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("snntorch")
pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch has no torch.distributed", allow_module_level=True)

NOISE = 0.05
TESTS = Path(__file__).resolve().parent
OPTIONS = ["--data", "digits", "--rounds", "2", "--epochs", "2", "--hidden", "64", "-T", "4", "--seed", "0",
           "--batch-size", "64", "--threads", "1"]


def torchrun(cwd: Path, args: list[str], entry: list[str] | None = None, env: dict[str, str] | None = None,
             timeout: int = 600, restarts: int = 0) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m slt_deploy search ARGS`` (or another entry)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", str(restarts), *(entry or ["-m", "slt_deploy"]), "search", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def single(out: Path, method: str) -> dict[str, Any]:
    """The same search in this process, no torchrun."""
    from slt_deploy.search import SearchConfig, run_search

    cfg = SearchConfig(method=method, data="digits", rounds=2, epochs=2, hidden=64, timesteps=4, seed=0,
                       batch_size=64)
    return run_search(cfg, out, threads=1).log


def check_ranks_agree(log: dict[str, Any], world: int = 2) -> None:
    """Every round's log holds one mask and one weight sha256 per rank, all equal."""
    assert log["distributed"]["world_size"] == world and log["distributed"]["backend"] == "gloo"
    for entry in log["rounds"]:
        for what in ("mask_sha256", "state_sha256"):
            digests = entry["ranks"][what]
            assert len(digests) == world and len(set(digests)) == 1, (entry["round"], what, digests)
        tp = entry["throughput"]
        assert tp["world_size"] == world and len(tp["samples_per_s_per_rank"]) == world
        assert tp["samples_per_s"] > 0 and 0 < tp["scaling_efficiency"]
        # the padded permutation is dealt out evenly: both ranks train on the same number of samples
        assert tp["samples"][0] == tp["samples"][1] > 0


def run_ddp(tmp: Path, method: str, extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp / f"{method}.slt"
    res = torchrun(tmp, ["--method", method, *OPTIONS, *extra, "--out", str(out)])
    return res, out


@pytest.fixture(scope="module")
def ddp_imp(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    return run_ddp(tmp_path_factory.mktemp("ddp-imp"), "imp")


@pytest.mark.parametrize("method", ["imp", "et"])
def test_two_processes_search_like_one(tmp_path: Path, ddp_imp, method: str) -> None:
    import slt_deploy as slt
    from slt_deploy.search import digits

    res, out = ddp_imp if method == "imp" else run_ddp(tmp_path, method)
    assert res.returncode == 0, res.stderr[-3000:]
    folder = out.parent
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".slt") == [out.name]  # one ticket, by rank 0
    leftover = folder / f"{out.name}.search"  # after success only the extension checkpoint stays
    assert sorted(p.name for p in leftover.iterdir()) == ["extend.pt"]
    log = json.loads(out.with_suffix(".json").read_text())
    check_ranks_agree(log)
    stages = [r["stage"] for r in log["rounds"]]
    assert stages == (["dense", "prune", "prune"] + (["final"] if method == "et" else []))
    # rank 0 alone prints: one header line, one "round 2" line
    assert res.stdout.count("ticket search on digits") == 1 and res.stdout.count("round  2") == 1
    # the ticket computes what the log says, on the reference simulator
    data = digits(0)
    ticket = slt.load(out)
    correct = int((slt.run(ticket, data.x_test).predictions() == data.y_test).sum())
    assert correct == log["ticket"]["correct_reference"] and log["ticket"]["reference_samples"] == 360
    if method == "et":  # the KL decision is rank 0's, broadcast: both ranks searched at the same T'
        assert log["et"]["search_timesteps"] == log["rounds"][1]["timesteps"] < 4
    # accuracy: within the run-to-run noise of the single-process search with the same global batch
    alone = single(tmp_path / f"single-{method}.slt", method)
    assert alone["distributed"]["world_size"] == 1 and alone["rounds"][1]["throughput"]["scaling_efficiency"] is None
    assert abs(log["ticket"]["accuracy_reference"] - alone["ticket"]["accuracy_reference"]) <= NOISE, \
        (log["ticket"]["accuracy_reference"], alone["ticket"]["accuracy_reference"])


@pytest.mark.slow
def test_torchrun_restarts_resume_by_themselves(tmp_path: Path, ddp_imp) -> None:
    """With --max-restarts, the restarted workers continue from the last completed round on their own."""
    out = tmp_path / "imp.slt"
    kill = {"SLT_TEST_KILL_RANK": "0", "SLT_TEST_KILL_STAGE": "round 2/", "SLT_TEST_KILL_STEP": "5"}
    res = torchrun(tmp_path, ["--method", "imp", *OPTIONS, "--out", str(out)],
                   entry=[str(TESTS / "distributed_kill.py")], env=kill, restarts=1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming after round 1" in res.stdout and "restarted by torchrun" in res.stdout
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["resumed_after_round"] == 1
    full_res, full_out = ddp_imp
    assert out.read_bytes() == full_out.read_bytes()  # the same ticket as the uninterrupted search


@pytest.mark.slow
def test_resume_after_a_rank_is_killed_mid_round(tmp_path: Path, ddp_imp) -> None:
    out = tmp_path / "imp.slt"
    args = ["--method", "imp", *OPTIONS, "--out", str(out)]
    kill = {"SLT_TEST_KILL_RANK": "1", "SLT_TEST_KILL_STAGE": "round 1/", "SLT_TEST_KILL_STEP": "10"}
    res = torchrun(tmp_path, args, entry=[str(TESTS / "distributed_kill.py")], env=kill)
    assert res.returncode != 0  # torchrun saw rank 1 die and stopped rank 0
    folder = tmp_path / "imp.slt.search"
    assert sorted(p.name for p in folder.iterdir()) == ["log.json", "round-00.pt"]  # round 1 never completed
    assert not out.exists()
    res = torchrun(tmp_path, args)
    assert res.returncode != 0 and res.stderr.count("slt: error:") == 1 and "pass --resume" in res.stderr
    res = torchrun(tmp_path, [*args, "--resume"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming after round 0" in res.stdout
    log = json.loads(out.with_suffix(".json").read_text())
    check_ranks_agree(log)
    assert log["resumed_after_round"] == 0 and [r["round"] for r in log["rounds"]] == [0, 1, 2]
    # the resumed search is the uninterrupted one, bit for bit: same masks, same weights, same ticket
    full_res, full_out = ddp_imp
    assert full_res.returncode == 0, full_res.stderr[-3000:]
    full = json.loads(full_out.with_suffix(".json").read_text())
    assert [r["ranks"] for r in log["rounds"]] == [r["ranks"] for r in full["rounds"]]
    assert log["ticket"]["correct_reference"] == full["ticket"]["correct_reference"]
    assert out.read_bytes() == full_out.read_bytes()


def test_early_bird_binary_conv_with_batchnorm_over_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "eb.slt"
    res = torchrun(tmp_path, ["--method", "eb", "--binary", "--arch", "conv", "--channels", "4,8", "--data", "digits",
                              "--epochs", "1", "--eb-window", "2", "--eb-max-epochs", "3", "--target-sparsity", "0.5",
                              "-T", "3", "--threads", "1", "--out", str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    log = json.loads(out.with_suffix(".json").read_text())
    check_ranks_agree(log)  # BatchNorm statistics combined over the ranks: identical weights and buffers everywhere
    assert [r["stage"] for r in log["rounds"]][-2:] == ["final", "binary"]
    assert log["eb"]["stop_epoch"] <= 3 and log["ticket"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert abs(log["ticket"]["accuracy_reference"] - log["ticket"]["accuracy_torch"]) <= 0.05


def test_errors_are_reported_once_by_rank_zero(tmp_path: Path) -> None:
    res = torchrun(tmp_path, ["--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "t.slt")])
    assert res.returncode != 0
    assert res.stderr.count("slt: error:") == 1 and "no such file or folder" in res.stderr
    res = torchrun(tmp_path, ["--batch-size", "63", "--out", str(tmp_path / "t.slt")])
    assert res.stderr.count("slt: error:") == 1 and "multiple of the number of processes (2)" in res.stderr
