"""The shipped examples run: the quick-start script and a short version of `slt demo`."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import slt_deploy as slt

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    pytest.importorskip("snntorch")
    monkeypatch.setattr(sys, "argv", ["quickstart.py", str(tmp_path)])
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    assert (tmp_path / "quickstart.slt").exists()
    assert "output spikes (8, 32, 10)" in capsys.readouterr().out


def test_short_demo_leaves_its_files_and_the_ticket_reproduces_its_accuracy(tmp_path: Path) -> None:
    pytest.importorskip("snntorch")
    pytest.importorskip("sklearn")
    from slt_deploy.demo import load_digits_split, run_demo

    summary = run_demo(tmp_path, epochs=2, rounds=1, prune_fraction=0.5)
    for name in ("digits.slt", "digits_ckpt.pt", "digits_test_x.npy", "summary.json"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "summary.json").read_text())["slt_file"] == str(tmp_path / "digits.slt")
    _, _, x_test, y_test = load_digits_split(0)
    result = slt.run(slt.load(tmp_path / "digits.slt"), x_test)
    assert float((result.predictions() == y_test).mean()) == summary["binary_accuracy_slt_reference"]
    assert np.array_equal(np.load(tmp_path / "digits_test_x.npy"), x_test)
