"""The input-safety layer (slt_deploy.untrusted): bounded reads, .npy headers checked before
allocation, FIFOs never opened, and a 6 KB ticket that loads and runs under ``ulimit -v 1000000``."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slt_deploy as slt
from slt_deploy.errors import SltError, SltFormatError, SltInputError
from slt_deploy.untrusted import load_npy, read_bounded, read_head

ROOT = Path(__file__).resolve().parents[1]
TICKET = ROOT / "examples" / "digits-mlp-imp-binary.slt"


def _digits(n: int = 8) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data[:n] / 16).astype(np.float32)


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (1_000_000 * 1024, 1_000_000 * 1024))


@pytest.mark.parametrize("args", [["inspect"], ["run", "-i", "X"], ["run", "-i", "X", "--target", "cpu"]])
def test_a_6kb_ticket_loads_and_runs_under_ulimit_v_1000000(tmp_path: Path, args: list[str]) -> None:
    x = tmp_path / "x.npy"
    np.save(x, _digits())
    argv = [sys.executable, "-m", "slt_deploy", args[0], str(TICKET), *[str(x) if a == "X" else a for a in args[1:]]]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert TICKET.stat().st_size < 6 * 1024
    if args[0] == "run":
        want = slt.run(slt.load(TICKET), _digits()).predictions().tolist()
        assert f"predictions: {want}" in res.stdout


def test_read_bounded_reads_exactly_the_file(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc" * 1000)
    assert read_bounded(p, 1 << 40) == b"abc" * 1000
    with pytest.raises(SltFormatError, match="above the 10-byte limit"):
        read_bounded(p, 10)
    with pytest.raises(SltFormatError, match="no such file"):
        read_bounded(tmp_path / "missing", 100)
    with pytest.raises(SltFormatError, match="is a directory"):
        read_bounded(tmp_path, 100)
    with pytest.raises(SltInputError, match="expected a file path"):
        read_bounded(3.5, 100, error=SltInputError)  # type: ignore[arg-type]


def test_a_fifo_is_refused_and_sniffed_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.slt"
    os.mkfifo(fifo)
    code = ("import sys, slt_deploy as slt\n"
            "from slt_deploy.errors import SltError\n"
            f"assert slt.api.source_kind({str(fifo)!r}) == 'slt'\n"
            "try:\n"
            f"    slt.load({str(fifo)!r})\n"
            "except SltError as e:\n"
            "    print('refused:', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "not a regular file" in res.stdout
    assert read_head(fifo, 16) == b""


def _npy(tmp_path: Path, header: bytes, data: bytes = b"", name: str = "x.npy") -> Path:
    """A version-1.0 .npy file with the given header dict text (padded as numpy pads it)."""
    pad = (-(10 + len(header) + 1)) % 64
    p = tmp_path / name
    p.write_bytes(b"\x93NUMPY\x01\x00" + (len(header) + pad + 1).to_bytes(2, "little") + header + b" " * pad + b"\n"
                  + data)
    return p


def test_npy_huge_declared_shape_is_refused_before_allocation(tmp_path: Path) -> None:
    p = _npy(tmp_path, b"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 64), }")
    assert p.stat().st_size < 200
    with pytest.raises(SltInputError, match=r"--input .*declares \(1099511627776, 64\)"):
        load_npy(p)


@pytest.mark.parametrize("header", [
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, ",  # unterminated: tokenize.TokenError in numpy
    b"{'descr': '<f4', 'fortran_order': False}",
    b"{'descr': 'zz', 'fortran_order': False, 'shape': (2,), }",
    b"[1, 2, 3]",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
])
def test_npy_malformed_headers_are_one_typed_line(tmp_path: Path, header: bytes) -> None:
    with pytest.raises(SltInputError, match="--input") as info:
        load_npy(_npy(tmp_path, header, b"\0" * 8))
    assert "\n" not in str(info.value)


def test_npy_objects_strings_archives_and_truncation_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SltInputError, match="not numeric"):
        load_npy(_npy(tmp_path, b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8))
    with pytest.raises(SltInputError, match="not numeric"):
        load_npy(_npy(tmp_path, b"{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", b"\0" * 12))
    with pytest.raises(SltInputError, match="truncated"):
        load_npy(_npy(tmp_path, b"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", b"\0" * 12))
    z = tmp_path / "a.npz"
    np.savez(z, x=np.zeros(3))
    with pytest.raises(SltInputError, match="archive"):
        load_npy(z, "--ann-input")


@pytest.mark.parametrize("mmap", [False, True])
def test_npy_round_trips_exactly(tmp_path: Path, mmap: bool) -> None:
    rng = np.random.default_rng(0)
    for i, arr in enumerate([_digits(), np.asfortranarray(rng.standard_normal((3, 5))), np.arange(6, dtype=np.int16),
                             np.zeros((0, 64), np.float32), rng.random((2, 3)) > 0.5, np.float32(2.5)]):
        p = tmp_path / f"a{i}.npy"
        np.save(p, arr)
        got = load_npy(p, mmap=mmap)
        assert got.dtype == np.asarray(arr).dtype and got.shape == np.shape(arr)
        np.testing.assert_array_equal(got, arr)


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(0, 127), byte=st.integers(0, 255))
def test_npy_header_mutations_only_raise_typed_errors(tmp_path_factory: pytest.TempPathFactory, pos: int,
                                                      byte: int) -> None:
    p = tmp_path_factory.mktemp("npy") / "x.npy"
    np.save(p, _digits(2))
    raw = bytearray(p.read_bytes())
    raw[pos] = byte
    p.write_bytes(bytes(raw))
    try:
        arr = load_npy(p)
    except SltInputError as exc:
        assert "\n" not in str(exc)
        return
    assert arr.nbytes <= len(raw)  # never more than the file holds


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_float64_input_above_float32_range_is_refused(target: str) -> None:
    x = _digits().astype(np.float64)
    x[0, 3] = 1e39
    with pytest.raises(SltInputError, match="float32 range"):
        slt.run(slt.load(TICKET), x, target=target)


def test_cli_bad_npy_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    p = _npy(tmp_path, b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 64), }")
    res = subprocess.run([sys.executable, "-m", "slt_deploy", "run", str(TICKET), "-i", str(p)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slt: error: --input"), res.stderr


def test_only_slt_errors_leave_the_readers(tmp_path: Path) -> None:
    assert issubclass(SltInputError, SltError) and issubclass(SltFormatError, SltError)
