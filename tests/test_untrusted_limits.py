"""Run limits: a memory estimate before every run (T x batch x layer sizes), one typed line above
the limit naming --max-memory / max_memory=; `slt energy --profile` reads only a bounded regular file."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import slt_deploy as slt
from slt_deploy.errors import SltInputError
from slt_deploy.untrusted.limits import check_run_memory, parse_bytes, run_bytes

ROOT = Path(__file__).resolve().parents[1]
TICKET = ROOT / "examples" / "digits-mlp-imp-binary.slt"


def _digits(n: int = 8) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data[:n] / 16).astype(np.float32)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slt_deploy", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("text,want", [("512M", 512 << 20), ("16G", 16 << 30), ("1.5GiB", 3 << 29), ("1000", 1000),
                                       ("2 kb", 2048), (4096, 4096)])
def test_sizes_parse(text, want: int) -> None:
    assert parse_bytes(text) == want


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "3X", ""])
def test_bad_sizes_name_the_flag(text: str) -> None:
    with pytest.raises(SltInputError, match="--max-memory"):
        parse_bytes(text)


def test_the_estimate_grows_with_t_and_batch() -> None:
    t = slt.load(TICKET)
    base = run_bytes(t, 8, record=False)
    assert run_bytes(dataclasses.replace(t, timesteps=800), 8, False) > 50 * base
    assert run_bytes(t, 16, False) == 2 * base
    assert run_bytes(t, 8, record=True) > base


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_t_one_million_is_refused_before_the_run(target: str) -> None:
    big = dataclasses.replace(slt.load(TICKET), timesteps=10**6)
    with pytest.raises(SltInputError, match="above the .* limit; raise it with max_memory="):
        slt.run(big, _digits(), target=target, record=False, max_memory="8G")


def test_a_raised_limit_lets_the_run_go() -> None:
    t = slt.load(TICKET)
    with pytest.raises(SltInputError, match="max_memory="):
        slt.run(t, _digits(), max_memory=1024)
    want = slt.run(t, _digits()).output
    assert np.array_equal(slt.run(t, _digits(), max_memory="1G").output, want)
    assert check_run_memory(t, 8, False, "1G") < 1 << 30


def test_cli_refuses_a_huge_run_in_one_line_naming_the_flag(tmp_path: Path) -> None:
    big = tmp_path / "big.slt"
    slt.save(dataclasses.replace(slt.load(TICKET), timesteps=10**6), big)
    x = tmp_path / "x.npy"
    np.save(x, _digits())
    for extra in ([], ["--target", "cpu"]):
        res = _cli("run", str(big), "-i", str(x), "--max-memory", "4G", *extra)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and "--max-memory" in lines[0], res.stderr
    res = _cli("run", str(TICKET), "-i", str(x), "--max-memory", "lots")
    assert res.returncode == 2 and "--max-memory" in res.stderr


def test_energy_profile_from_dev_zero_is_refused(tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, _digits())
    res = _cli("energy", str(TICKET), "-i", str(x), "--profile", "/dev/zero")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "not a regular file" in lines[0], res.stderr


def test_an_onnx_file_run_is_estimated_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from slt_deploy.targets.onnxruntime import run_onnx_file

    path = tmp_path / "m.onnx"
    slt.export(slt.load(TICKET), path, to="onnx")
    assert np.array_equal(run_onnx_file(path, _digits()).output, slt.run(slt.load(TICKET), _digits()).output)
    monkeypatch.setenv("SLT_MAX_MEMORY", "1K")
    with pytest.raises(SltInputError, match="SLT_MAX_MEMORY"):
        run_onnx_file(path, _digits())
