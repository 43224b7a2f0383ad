"""`slt verify`: agreement matrix, exact-by-design failures, refusals and CLI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import slt_deploy as slt
from slt_deploy import registry
from slt_deploy import verify as verify_mod
from slt_deploy.cli import app
from slt_deploy.errors import SltUnsupportedError
from slt_deploy.ir import LI, LIF, BinaryWeights, Linear, sequential
from slt_deploy.reference import simulate
from slt_deploy.result import Result

runner = CliRunner()


def ticket(readout: bool = False) -> slt.Ticket:
    rng = np.random.default_rng(3)
    w1 = BinaryWeights(rng.random((24, 12)) < 0.4, rng.random((24, 12)) < 0.5, np.float32(0.5))
    w2 = BinaryWeights(rng.random((5, 24)) < 0.5, rng.random((5, 24)) < 0.5, np.float32(0.75))
    last = LI("out", shape=(5,), beta=0.5) if readout else LIF("out", shape=(5,), threshold=0.5)
    return sequential((12,), [Linear("fc1", w1), LIF("lif1", shape=(24,), threshold=0.5),
                              Linear("fc2", w2), last], 6)


def flipped(ticket_: slt.Ticket, x: np.ndarray, record: bool = True) -> Result:
    """A broken target: one output spike flipped at step 2."""
    r = simulate(ticket_, x)
    out = r.output.copy()
    out[2, 0, 0] = 1 - out[2, 0, 0]
    return Result(out, r.spiking, {}, r.spike_counts, "broken")


def refusing(ticket_: slt.Ticket, x: np.ndarray, record: bool = True):
    raise SltUnsupportedError("node 'lif1': subtract reset has no equivalent here")


def quantised_semantics(ticket_: slt.Ticket, x: np.ndarray):
    return {"fixed-point"}, ["weights quantised to 8 bits"]


def fake_target(monkeypatch, name: str, entry: str, arithmetic=registry.Arithmetic.FLOAT32_EXACT,
                semantics: str | None = None) -> None:
    """Register a target for one test, as a plug-in would (module-level functions of this file)."""
    spec = registry.TargetSpec(name, "test double", arithmetic, f"{__name__}:{entry}", "slt_deploy.reference:HANDLERS",
                               semantics=None if semantics is None else f"{__name__}:{semantics}")
    monkeypatch.setitem(registry.TARGETS, name, spec)


@pytest.fixture()
def x() -> np.ndarray:
    return np.random.default_rng(4).random((7, 12))


def test_identical_targets_agree_everywhere(x: np.ndarray) -> None:
    pytest.importorskip("torch")
    rep = verify_mod.verify(ticket(), x, ["reference", "torch"])
    (pair,) = rep.pairs
    assert rep.ok and pair.identical and pair.exact_by_design
    assert pair.spike_agreement == 1.0 and pair.argmax_agreement == 1.0 and pair.first_divergence is None


def test_a_broken_exact_target_fails_and_names_the_first_divergence(x, monkeypatch) -> None:
    fake_target(monkeypatch, "broken", "flipped")
    rep = verify_mod.verify(ticket(), x, ["reference", "broken"])
    (pair,) = rep.pairs
    assert not rep.ok and pair.failed
    assert pair.first_divergence == {"step": 2, "node": "output", "differing_values": 1}
    assert pair.spike_agreement == 1 - 1 / rep.runs[0].result.output.size


def test_non_exact_pairs_report_without_failing(x, monkeypatch) -> None:
    fake_target(monkeypatch, "quantised", "flipped", registry.Arithmetic.FIXED_POINT, "quantised_semantics")
    rep = verify_mod.verify(ticket(), x, ["reference", "quantised"])
    assert rep.ok and not rep.pairs[0].exact_by_design and not rep.pairs[0].identical
    assert rep.runs[1].notes == ["weights quantised to 8 bits"]


def test_membrane_readout_reports_max_dv(x: np.ndarray) -> None:
    pytest.importorskip("torch")
    rep = verify_mod.verify(ticket(readout=True), x, ["reference", "torch"])
    assert rep.pairs[0].max_abs_dv == 0.0


def test_cli_exit_codes_and_refusals(tmp_path: Path, x: np.ndarray, monkeypatch) -> None:
    path = tmp_path / "t.slt"
    slt.save(ticket(), path)
    np.save(tmp_path / "x.npy", x)
    base = ["verify", str(path), "--input", str(tmp_path / "x.npy")]
    fake_target(monkeypatch, "refuser", "refusing")
    res = runner.invoke(app, [*base, "--targets", "reference,refuser", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["targets"][1]["error"].startswith("node 'lif1'")
    fake_target(monkeypatch, "broken", "flipped")
    assert runner.invoke(app, [*base, "--targets", "reference,broken"]).exit_code == 1
    bad = runner.invoke(app, [*base, "--targets", "reference,gpu"])
    assert bad.exit_code == 2 and "unknown target 'gpu'" in bad.stderr
    assert runner.invoke(app, [*base, "--targets", "reference"]).exit_code == 2
