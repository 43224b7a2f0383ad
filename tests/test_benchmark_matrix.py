"""Smoke test of the issue-12 workload matrix (benchmarks/runtime.py --matrix): it runs, writes
JSON + Markdown with medians, ratios, hidden rates and the slow-path count (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_matrix_spot_check_writes_json_and_markdown(tmp_path: Path) -> None:
    out, md = tmp_path / "m.json", tmp_path / "m.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "runtime.py"), "--matrix", "--quick", "--networks", "digits-mlp",
           "--weights", "float32", "--inputs", "standardized", "--batches", "1,64",
           "--systems", "slt cpu (numpy),slt reference,PyTorch loop", "--json", str(out), "--markdown", str(md)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    row = json.loads(out.read_text())["rows"][0]
    assert set(row["systems"]) == {"slt cpu (numpy)", "slt reference", "PyTorch loop"}
    assert row["slow_path_batch64"]["of"] == 64 * (128 + 10 * 8)
    assert 0 < row["hidden_spike_rates"]["lif1"] < 1
    assert "batch64: slt reference time / PyTorch loop time" in row["ratios"]
    assert "| digits-mlp | float32 | standardized |" in md.read_text()
