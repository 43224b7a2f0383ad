"""The corruption campaign (tools/fuzz_campaign.py) in small: seeded mutations and structured edits
of every loader's input, and hostile command lines (the cli kind), each case a fresh process with
a timeout and an 8 GiB address-space cap; only typed errors or unchanged results are allowed. The
full table: docs/security.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BAD = ("silent change", "other exception", "hang", "memory blow-up")


@pytest.mark.slow
def test_a_small_campaign_finds_only_typed_errors_or_unchanged_results(tmp_path: Path) -> None:
    out = tmp_path / "campaign.json"
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz_campaign.py"), "--cases", "3", "--timeout", "120",
                          "--seed", "5", "--json", str(out)], capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["table"]) == {"slt", "nir", "onnx", "netx", "checkpoint", "npy", "cli"}
    for kind, counts in report["table"].items():
        assert sum(counts.values()) == 3
        assert all(counts[b] == 0 for b in BAD), (kind, counts, report["notes"].get(kind))
