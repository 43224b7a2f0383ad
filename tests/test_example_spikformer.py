"""The committed MultiSp spiking-transformer ticket (examples/spikformer/) and `slt demo --model spikformer`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import slt_deploy as slt
from slt_deploy.errors import SltUnsupportedError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "spikformer" / "digits-spikformer-multisp.slt"


def _split() -> tuple[np.ndarray, np.ndarray, dict]:
    pytest.importorskip("sklearn")
    from slt_deploy.search.data import digits

    log = json.loads(EXAMPLE.with_suffix(".json").read_text())
    data = digits(log["data"]["split_seed"])
    return data.x_test.reshape((-1, *log["data"]["input_shape"])), data.y_test, log


def test_the_multisp_example_reproduces_its_logged_accuracy_and_sparsity_levels() -> None:
    x, y, log = _split()
    ticket = slt.load(EXAMPLE)
    correct = int((slt.run(ticket, x).predictions() == y).sum())
    assert correct == log["ticket"]["correct_reference"] and log["config"]["arch"] == "spikformer"
    (mask,) = [n for n in ticket.nodes if n.kind == "select"]
    assert len(mask.indices) == 8 == log["config"]["token_keep"] * 16  # tokens kept
    layers = ticket.synapse_layers()
    assert all(layer.weights.kind == "binary" for layer in layers)  # ConvPEP included
    kept = sum(int(layer.weights.mask.sum()) for layer in layers)
    assert 1 - kept / sum(layer.weights.mask.size for layer in layers) == pytest.approx(log["ticket"]["sparsity"])
    assert {"matmul", "reduce", "transpose", "reshape"} <= {n.kind for n in ticket.nodes}


def test_the_multisp_example_runs_exactly_everywhere_and_refuses_nir(tmp_path: Path) -> None:
    x, _, _ = _split()
    x = x[:40]
    ticket = slt.load(EXAMPLE)
    ref = slt.run(ticket, x, record=True)
    for target in ("cpu", "torch", "onnxruntime"):
        got = slt.run(ticket, x, target=target, record=True)
        for name, values in ref.layers.items():
            np.testing.assert_array_equal(got.layers[name], values, err_msg=f"{target}: {name}")
    with pytest.raises(SltUnsupportedError, match=r"node '[\w.]+' \(\w+\): NIR 1.0 has no"):
        slt.export(ticket, tmp_path / "t.nir", "nir")


@pytest.mark.slow
def test_slt_demo_model_spikformer(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    res = CliRunner().invoke(app, ["demo", "--model", "spikformer", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(v["identical_to_reference"] for v in summary["targets"].values() if isinstance(v, dict))
    assert summary["nir"].startswith("refused: node") and (tmp_path / "spikformer.onnx").is_file()
    assert summary["energy"]["neurobench_pj"] > 0 and any(lay["per_head"] for lay in summary["energy"]["layers"])
    bad = CliRunner().invoke(app, ["demo", "--model", "vit", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--model" in bad.output
