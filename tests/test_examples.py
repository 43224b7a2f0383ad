"""The shipped examples run: the quick-start script and `slt demo` (example ticket and --retrain)."""

from __future__ import annotations

import io
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


def test_demo_leaves_ticket_exports_agreement_matrix_and_energy_report(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from rich.console import Console

    from slt_deploy.demo import EXAMPLE_TICKET, load_digits_split, run_demo

    console = Console(record=True, width=200, file=io.StringIO())
    summary = run_demo(tmp_path, console=console)
    text = console.export_text()
    assert "APPROXIMATELY" not in text and "not exported" not in text and "not written" not in text, text
    for name in ("digits.slt", "inspect.json", "verify.json", "energy.html", "energy.json", "summary.json",
                 "digits_test_x.npy"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "digits.slt").read_bytes() == (ROOT / "examples" / EXAMPLE_TICKET).read_bytes()
    assert json.loads((tmp_path / "verify.json").read_text())["ok"] is True
    assert summary["verify"]["ok"] and summary["exports"]["onnx"]["exact"]
    exports = summary["exports"]
    for fmt in ("nir", "onnx", "netx", "c"):  # the example ticket leaves exactly in every format
        assert exports[fmt]["exact"] and exports[fmt]["path"] and "refused" not in exports[fmt], fmt
    assert exports["nir"]["report"]["exact"] and exports["nir"]["report"]["approximations"] == []
    assert exports["netx"]["report"]["same_as_lava_target"] and exports["netx"]["report"]["approximations"] == []
    assert "reset_interval=8, reset_offset=1" in text  # how netx must load it to be exact
    _, _, x_test, y_test = load_digits_split(0)
    result = slt.run(slt.load(tmp_path / "digits.slt"), x_test)
    assert float((result.predictions() == y_test).mean()) == summary["accuracy"]["reference"]
    assert np.array_equal(np.load(tmp_path / "digits_test_x.npy"), x_test)


@pytest.mark.slow
def test_demo_retrain_searches_a_new_ticket(tmp_path: Path) -> None:
    pytest.importorskip("snntorch")
    from slt_deploy.demo import run_demo

    summary = run_demo(tmp_path, retrain=True, rounds=1, epochs=1)
    assert summary["ticket_source"] == "search (--retrain)"
    ticket = slt.load(tmp_path / "digits.slt")
    assert all(layer.weights.kind == "binary" for layer in ticket.synapse_layers())
