"""The committed example tickets (examples/*.slt) reproduce the accuracy examples/README.md states.

Each ticket comes with its search log (same name, .json: the command's options, the data
split, the measured accuracies). The test runs the packed ticket on the digits test split
with the reference simulator and checks the count of correct predictions exactly, then the
same inputs on the bit-packed CPU runtime (when it is installed) spike for spike.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import slt_deploy as slt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TICKETS = sorted(EXAMPLES.glob("*.slt"))
REQUIRED = {"digits-mlp-imp-binary.slt", "digits-conv-imp-binary.slt"}


def _log(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def _test_split(log: dict) -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("sklearn")
    from slt_deploy.search.data import digits

    assert log["data"]["name"] == "digits"
    data = digits(log["data"]["split_seed"])
    return data.x_test.reshape((-1, *log["data"]["input_shape"])), data.y_test


def _readme_row(name: str) -> str:
    rows = [line for line in (EXAMPLES / "README.md").read_text().splitlines()
            if line.startswith("|") and f"`{name}`" in line]
    assert len(rows) == 1, f"examples/README.md must have exactly one table row for {name}"
    return rows[0]


def test_the_examples_are_committed() -> None:
    assert REQUIRED <= {p.name for p in TICKETS}
    for path in TICKETS:
        assert path.with_suffix(".json").is_file(), f"{path.name} has no search log"
        assert path.stat().st_size < 64 * 1024, f"{path.name} is not small"


@pytest.mark.parametrize("path", TICKETS, ids=[p.stem for p in TICKETS])
def test_example_ticket_reproduces_its_stated_accuracy(path: Path) -> None:
    log = _log(path)
    x, y = _test_split(log)
    ticket = slt.load(path)
    result = slt.run(ticket, x)
    correct = int((result.predictions() == y).sum())
    assert correct == log["ticket"]["correct_reference"]
    assert len(y) == log["ticket"]["test_samples"]
    row = _readme_row(path.name)
    assert f"{correct}/{len(y)}" in row and f"{correct / len(y):.2%}" in row
    # a binary ticket at >= 90 % sparsity, as the README says
    layers = ticket.synapse_layers()
    assert all(layer.weights.kind == "binary" for layer in layers)
    kept = sum(int(layer.weights.mask.sum()) for layer in layers)
    total = sum(layer.weights.mask.size for layer in layers)
    assert 1 - kept / total == pytest.approx(log["ticket"]["sparsity"], abs=1e-12)
    assert 1 - kept / total >= 0.9
    assert f"{1 - kept / total:.1%}" in row


@pytest.mark.parametrize("path", TICKETS, ids=[p.stem for p in TICKETS])
def test_example_ticket_on_the_cpu_runtime_fires_the_reference_spikes(path: Path) -> None:
    pytest.importorskip("slt_deploy.targets.cpu")
    log = _log(path)
    x, _ = _test_split(log)
    ticket = slt.load(path)
    reference = slt.run(ticket, x)
    cpu = slt.run(ticket, x, target="cpu")
    assert np.array_equal(cpu.spikes, reference.spikes)


# ------------------------------------------------------------------ they leave exactly (issue 11)
def test_example_tickets_use_semantics_every_format_states_exactly() -> None:
    """Zero reset (the ECCV 2022 hard reset) and a β that NIR's τ/dt and Loihi's 12-bit decay both state."""
    pytest.importorskip("nir")
    from slt_deploy.exporters.nir._common import DEFAULT_DT, tau_for_beta

    for path in TICKETS:
        for layer in slt.load(path).neuron_layers():
            assert layer.reset == "zero", (path.name, layer.name)
            beta = np.unique(layer.beta)
            assert tau_for_beta(beta, DEFAULT_DT)[1].all(), (path.name, layer.name)
            dv = 4096 * (1 - beta.astype(np.float64))
            assert np.array_equal(dv, np.round(dv)), (path.name, layer.name)


@pytest.mark.parametrize("path", TICKETS, ids=[p.stem for p in TICKETS])
def test_example_ticket_exports_exactly(path: Path, tmp_path: Path) -> None:
    pytest.importorskip("nir")
    pytest.importorskip("h5py")
    from slt_deploy.errors import SltUnsupportedError
    from slt_deploy.ir import MaxPool2d

    ticket = slt.load(path)
    netx = slt.export(ticket, tmp_path / "t.net", to="netx")
    assert netx["same_as_lava_target"] and netx["approximations"] == []
    if any(isinstance(n, MaxPool2d) for n in ticket.nodes):  # NIR 1.0 has no max pool: a refusal, never approximate
        with pytest.raises(SltUnsupportedError, match="MaxPool2d has no NIR 1.0 primitive"):
            slt.export(ticket, tmp_path / "t.nir", to="nir", allow_approximate=True)
    else:
        nir_report = slt.export(ticket, tmp_path / "t.nir", to="nir")
        assert nir_report["exact"] and nir_report["approximations"] == [] and nir_report["consumer_notes"] == []


@pytest.mark.lava
@pytest.mark.parametrize("path", TICKETS, ids=[p.stem for p in TICKETS])
def test_example_ticket_on_lava_equals_the_fixed_point_reference(path: Path) -> None:
    """Lava's Loihi 2 simulation fires the fixed-point reference's spikes; the float reference's too where
    the conversion report proves it (it does not for these tickets: float α and biases, β = 7/8 over T steps)."""
    from slt_deploy.targets import lava as lava_target

    if not lava_target.lava_available():
        pytest.skip("lava-nc is not installed (tools/bootstrap.sh)")
    x, _ = _test_split(_log(path))
    x = x[:6]
    ticket = slt.load(path)
    lava = slt.run(ticket, x, target="lava")
    fixed = slt.run(ticket, x, target="fixed-reference")
    np.testing.assert_array_equal(lava.spikes, fixed.spikes)
    if lava.diagnostics.conversion.get("spikes_equal_reference") is True:
        np.testing.assert_array_equal(lava.spikes, slt.run(ticket, x).spikes)
