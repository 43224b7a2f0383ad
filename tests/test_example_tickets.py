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
