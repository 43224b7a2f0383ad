"""The `slt` command line: JSON output, files it writes, and one-line user errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import slt_deploy as slt
from slt_deploy.cli import app
from slt_deploy.ir import LIF, BinaryWeights, Encoding, Linear, sequential

runner = CliRunner()


def small_ticket(seed: int = 0) -> slt.Ticket:
    rng = np.random.default_rng(seed)
    w1 = BinaryWeights(rng.random((32, 16)) < 0.3, rng.random((32, 16)) < 0.5, rng.random(32) + 0.5)
    w2 = BinaryWeights(rng.random((4, 32)) < 0.5, rng.random((4, 32)) < 0.5, np.float32(0.75))
    return sequential((16,), [Linear("fc1", w1), LIF("lif1", shape=(32,), beta=0.875),
                              Linear("fc2", w2), LIF("lif2", shape=(4,), reset="subtract")], 6, Encoding())


@pytest.fixture()
def ticket_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.slt"
    slt.save(small_ticket(), path)
    return path


def test_inspect_json_has_the_documented_layer_keys(ticket_file: Path) -> None:
    res = runner.invoke(app, ["inspect", str(ticket_file), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["name"] for r in doc["layers"]] == ["fc1", "fc2"]
    for row in doc["layers"]:
        assert {"name", "kind", "shape", "density", "encoding", "bytes", "bits_per_synapse",
                "entropy_bound_bits_per_synapse"} <= set(row)
    assert doc["timesteps"] == 6 and doc["input_shape"] == [16]


def test_inspect_table_for_people(ticket_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slt_deploy import cli

    monkeypatch.setattr(cli.console, "width", 160)
    res = runner.invoke(app, ["inspect", str(ticket_file)])
    assert res.exit_code == 0 and "fc1" in res.stdout and "bits/syn" in res.stdout


def test_run_writes_spikes_and_counts_equal_to_the_api(ticket_file: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(1).random((5, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(app, ["run", str(ticket_file), "--input", str(tmp_path / "x.npy"),
                              "-o", str(tmp_path / "y.npz"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    expected = slt.run(slt.load(ticket_file), x)
    with np.load(tmp_path / "y.npz") as y:
        assert y["spikes"].shape == (6, 5, 4)
        assert np.array_equal(y["spikes"], expected.spikes)
        assert np.array_equal(y["counts"], expected.counts)
    assert summary["predictions"] == expected.predictions().tolist()
    assert set(summary["spike_counts"]) == {"lif1", "lif2"}


def test_run_on_the_torch_target_matches(ticket_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    np.save(tmp_path / "x.npy", np.random.default_rng(2).random((3, 16)))
    a = runner.invoke(app, ["run", str(ticket_file), "--input", str(tmp_path / "x.npy"), "--json"])
    b = runner.invoke(app, ["run", str(ticket_file), "--input", str(tmp_path / "x.npy"), "--json", "--target", "torch"])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    assert json.loads(a.stdout)["spike_counts"] == json.loads(b.stdout)["spike_counts"]


@pytest.mark.parametrize("case", ["missing", "garbage", "pickle", "shape", "nan", "directory"])
def test_bad_input_files_are_one_line_errors(ticket_file: Path, tmp_path: Path, case: str) -> None:
    x = tmp_path / "x.npy"
    if case == "garbage":
        x.write_bytes(b"not an array")
    elif case == "pickle":
        np.save(x, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "shape":
        np.save(x, np.zeros((2, 7)))
    elif case == "nan":
        np.save(x, np.full((2, 16), np.nan))
    elif case == "directory":
        x = tmp_path
    res = runner.invoke(app, ["run", str(ticket_file), "--input", str(x)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("slt: error: ")
    assert "Traceback" not in res.output


def test_corrupt_slt_is_exit_2(tmp_path: Path, ticket_file: Path) -> None:
    data = bytearray(ticket_file.read_bytes())
    data[-3] ^= 0xFF
    bad = tmp_path / "bad.slt"
    bad.write_bytes(bytes(data))
    for cmd in (["inspect", str(bad)], ["run", str(bad), "--input", str(bad)]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output


def test_pack_from_a_checkpoint_with_arch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.utils.prune as prune

    from slt_deploy.training import digits_model

    model = digits_model(hidden=32)
    prune.l1_unstructured(model[0], "weight", amount=0.8)
    ckpt = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "p.slt"
    res = runner.invoke(app, ["pack", str(ckpt), "--arch", f"{__name__}:hidden32", "--binarize",
                              "-T", "5", "--input-shape", "64", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    ticket = slt.load(out)
    assert ticket.timesteps == 5
    first = ticket.synapse_layers()[0]
    assert first.weights.kind == "binary"
    assert np.array_equal(first.weights.mask, model[0].weight_mask.numpy() != 0)


def hidden32():  # the --arch callable used above
    from slt_deploy.training import digits_model

    return digits_model(hidden=32)


def test_pack_refuses_weights_only_checkpoint_without_arch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ckpt = tmp_path / "w.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, ckpt)
    res = runner.invoke(app, ["pack", str(ckpt), "-o", str(tmp_path / "o.slt")])
    assert res.exit_code == 2 and "--arch" in res.stderr


def test_unknown_source_type_and_target(tmp_path: Path, ticket_file: Path) -> None:
    (tmp_path / "m.txt").write_text("x")
    res = runner.invoke(app, ["pack", str(tmp_path / "m.txt"), "-o", str(tmp_path / "o.slt")])
    assert res.exit_code == 2 and "unknown source type" in res.stderr
    np.save(tmp_path / "x.npy", np.zeros((1, 16)))
    res = runner.invoke(app, ["run", str(ticket_file), "--input", str(tmp_path / "x.npy"), "--target", "gpu"])
    assert res.exit_code == 2 and "unknown target" in res.stderr


def test_console_script_runs_and_reports_errors(tmp_path: Path) -> None:
    """The installed entry point, in a fresh process: help works, errors are one line, exit 2."""
    exe = Path(sys.executable).with_name("slt")
    if not exe.exists():
        pytest.skip("console script not installed")
    help_run = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "inspect" in help_run.stdout
    bad = subprocess.run([str(exe), "inspect", str(tmp_path / "nope.slt")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_package_installs_no_generic_top_level_names() -> None:
    code = ("import importlib.util, sys; sys.path = [p for p in sys.path if p not in ('', '.')];"
            "import slt_deploy.exporters, slt_deploy.targets;"
            "print(importlib.util.find_spec('exporters'), importlib.util.find_spec('targets'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None None"


def test_bench_times_targets_side_by_side(ticket_file: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(2).random((4, 16)).astype(np.float32))
    res = runner.invoke(app, ["bench", str(ticket_file), "--input", str(tmp_path / "x.npy"),
                              "--targets", "reference,cpu", "--repeats", "3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["target"] for r in doc["results"]] == ["reference", "cpu"]
    for row in doc["results"]:
        assert row["same_output_as_first"] and row["median_s"] > 0 and row["samples_per_s"] > 0
    assert doc["results"][0]["speed_vs_first"] == 1.0 and doc["batch"] == 4
    bad = runner.invoke(app, ["bench", str(ticket_file), "--input", str(tmp_path / "x.npy"), "--repeats", "0"])
    assert bad.exit_code == 2 and "--repeats" in bad.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "reference", "--backend", "numpy"], "--backend does not apply to --target reference"),
    (["--target", "cpu", "--precision", "float64"], "--precision does not apply to --target cpu"),
    (["--target", "cpu", "--backend", "fortran"], "--backend for --target cpu must be one of auto, numba, numpy"),
    (["--target", "gpu"], "unknown target 'gpu'"),
])
def test_run_refuses_flags_of_other_targets_in_one_line(ticket_file: Path, tmp_path: Path, args, message) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 16), np.float32))
    res = runner.invoke(app, ["run", str(ticket_file), "--input", str(tmp_path / "x.npy"), *args])
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_console_script_usage_errors_are_one_line() -> None:
    for args, text in ((["nope"], "No such command"), (["run", "t.slt"], "Missing option")):
        proc = subprocess.run([sys.executable, "-m", "slt_deploy.cli", *args], capture_output=True, text=True)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and text in proc.stderr, proc.stderr


def test_every_command_says_what_a_non_ticket_file_is(ticket_file: Path, tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 16), np.float32))
    onnx_path = tmp_path / "t.onnx"
    assert runner.invoke(app, ["export", str(ticket_file), "--to", "onnx", "-o", str(onnx_path)]).exit_code == 0
    for command in (["inspect"], ["verify", "--input", str(x)], ["energy", "--input", str(x)],
                    ["bench", "--input", str(x)], ["export", "--to", "nir", "-o", str(tmp_path / "o.nir")]):
        res = runner.invoke(app, [command[0], str(onnx_path), *command[1:]])
        assert res.exit_code == 2 and "an exported ONNX model holds no ticket" in res.stderr, (command, res.output)
        res = runner.invoke(app, [command[0], str(x), *command[1:]])
        assert res.exit_code == 2 and "a NumPy file, not a ticket" in res.stderr, (command, res.output)


def test_inspect_takes_a_nir_graph(ticket_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("nir")
    nir_path = tmp_path / "t.nir"
    ok = runner.invoke(app, ["export", str(ticket_file), "--to", "nir", "-o", str(nir_path), "--allow-approximate"])
    assert ok.exit_code == 0, ok.output
    res = runner.invoke(app, ["inspect", str(nir_path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["name"] for r in doc["layers"]] == ["fc1", "fc2"] and doc["timesteps"] == 6


def test_lava_run_states_what_it_equals_and_reports_progress(tmp_path: Path) -> None:
    pytest.importorskip("lava")
    from slt_deploy.targets import lava

    ticket = small_ticket()  # beta 0.875 and alpha not on Loihi's grid: no proof of float equality
    slt.save(ticket, tmp_path / "t.slt")
    x = np.random.default_rng(3).random((2, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(app, ["run", str(tmp_path / "t.slt"), "--input", str(tmp_path / "x.npy"), "--target", "lava",
                              "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["target"] == "lava" and "slt verify" in doc["exactness"] and "reference,lava" in doc["exactness"]
    calls: list[tuple[int, int]] = []
    lava.run(ticket, x, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] >= ticket.timesteps
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_demo_feeds_digits_in_the_tickets_input_shape() -> None:
    from slt_deploy.demo import _shaped_for
    from slt_deploy.errors import SltError
    from slt_deploy.ir import Conv2d, Flatten

    x = np.random.default_rng(0).random((5, 64))
    w = BinaryWeights(np.ones((2, 1, 3, 3), bool), np.zeros((2, 1, 3, 3), bool), np.float32(0.5))
    conv = sequential((1, 8, 8), [Conv2d("c", w, padding=1), LIF("l", shape=(2, 8, 8)), Flatten("f")], 4)
    assert _shaped_for(conv, x).shape == (5, 1, 8, 8)
    assert _shaped_for(small_ticket(), np.zeros((5, 16))).shape == (5, 16)
    with pytest.raises(SltError, match="--ticket"):
        _shaped_for(conv, np.zeros((5, 16)))


def test_redirected_output_is_never_cut(ticket_file: Path, tmp_path: Path) -> None:
    # stdout to a file (not a terminal): tables print at their natural width, nothing ends in '…'
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((3, 16)).astype(np.float32))
    long_name = tmp_path / ("a_very_long_folder_name_" * 4)
    long_name.mkdir()
    deep = long_name / "ticket_with_a_long_name.slt"
    deep.write_bytes(ticket_file.read_bytes())
    commands = [["inspect", str(deep)], ["run", str(deep), "--input", str(x), "--target", "cpu"],
                ["verify", str(deep), "--input", str(x), "--targets", "reference,cpu,fixed-reference"],
                ["energy", str(deep), "--input", str(x)], ["bench", str(deep), "--input", str(x), "--repeats", "2"],
                ["export", str(deep), "--to", "onnx", "-o", str(tmp_path / "t.onnx")]]
    for args in commands:
        out = tmp_path / "out.txt"
        with open(out, "w") as fh:
            proc = subprocess.run([sys.executable, "-m", "slt_deploy.cli", *args], stdout=fh, stderr=subprocess.PIPE,
                                  text=True, env={**__import__("os").environ, "COLUMNS": "60"})
        text = out.read_text()
        assert proc.returncode in (0, 1), (args, proc.stderr)
        assert "…" not in text, (args, [ln for ln in text.splitlines() if "…" in ln][:3])
        named = {"inspect": str(deep), "export": str(tmp_path / "t.onnx")}.get(args[0])
        assert named is None or named in text, (args, text[:400])  # a path the command prints is printed whole
