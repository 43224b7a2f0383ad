"""Hostile CLI argument values found by the ``cli`` kind of tools/fuzz_campaign.py: every one is a
single ``slt: error:`` line naming the flag (or quoting a positional path), exit 2, nothing touched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slt_deploy.cli import app
from slt_deploy.cli.io import name_the_flag

ROOT = Path(__file__).resolve().parents[1]
TICKET = str(ROOT / "examples" / "digits-mlp-imp-binary.slt")
runner = CliRunner()


def _one_line(args: list[str], flag: str, cwd: Path) -> str:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = runner.invoke(app, args)
    finally:
        os.chdir(old)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert len(lines) == 1 and lines[0].startswith("slt: error: "), res.stderr
    assert flag in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, flag", [
    (["pack", TICKET, "-o", "/proc/x"], "-o/--output"),
    (["export", TICKET, "--to", "onnx", "-o", "/proc/self/status"], "-o/--output"),
    (["export", TICKET, "--to", "nan", "-o", "x.onnx"], "--to"),
    (["search", "--out", "/"], "--out"),
    (["search", "--out", "x.slt", "--log", "/"], "--log"),
    (["search", "--out", "x.slt", "--epochs", "99999999999999999999999"], "--epochs"),
    (["search", "--out", "x.slt", "--seed", "18446744073709551616"], "--seed"),
    (["search", "--out", "x.slt", "--threads", "0"], "--threads"),
    (["search", "--out", "x.slt", "--method", "eb", "--target-sparsity", "0"], "--target-sparsity"),
    (["demo", "--retrain", "--rounds", "-1"], "--rounds"),
    (["demo", "--retrain", "--seed", "99999999999999999999999"], "--seed"),
    (["bench", TICKET, "-i", "x.npy", "--repeats", "9223372036854775808"], "--repeats"),
    (["bench", TICKET, "-i", "x.npy", "--targets", "\u202e"], "--targets"),
    (["pack", TICKET, "-o", "p.slt", "--arch", "\udcff"], "--arch"),
    (["energy", TICKET, "-i", "x.npy", "--profile", TICKET], "--profile"),
    (["run", TICKET, "-i", "missing.npy"], "--input"),
    (["run", TICKET, "-i", "x.npy", "--target", "lava", "--input-frac-bits", "99999999999999999999999"],
     "--input-frac-bits"),
    (["export", TICKET, "--to", "nir", "-o", "x.nir", "--dt", "1e999"], "--dt"),
    (["export", TICKET, "--to", "nir", "-o", "x.nir", "--dt", "1e308"], "--dt"),
    (["export", TICKET, "--to", "onnx", "-o", "n" * 300 + ".onnx"], "-o/--output"),
    (["energy", TICKET, "-i", "x.npy", "--profile", "n" * 300 + ".toml"], "--profile"),
    (["energy", TICKET, "-i", "x.npy", "--profile", ""], "--profile"),
    (["search", "--out", "x.slt", "--data", "a" * 5000], "--data"),
    (["search", "--out", "x.slt", "--data", ""], "--data"),
    (["energy", TICKET, "-i", "x.npy", "--profile", "x.npy"], "--profile"),
    (["energy", TICKET, "-i", "x.npy", "--ann", ""], "--ann"),
    (["export", TICKET, "--to", "c", "-o", "/sys/x"], "-o/--output"),
    (["export", TICKET, "--to", "onnx", "-o", ""], "-o/--output"),
    (["export", TICKET, "--to", "c", "-o", "x.npy/c"], "-o/--output"),
    (["search", "--out", "x.slt", "--lr", "1e308"], "--lr"),
    (["search", "--out", "no/such/x.slt"], "--out"),
    (["search", "--out", "x.npy/x.slt"], "--out"),
    (["search", "--out", "x.slt", "--log", "n" * 300 + ".json", "--epochs", "1", "--rounds", "1", "--hidden", "8"],
     "--log"),
    (["energy", TICKET, "-i", "x.npy", "--ann", "x.npy"], "--ann"),
    (["run", TICKET, "-i", "x.npy", "--target", "cpu", "--threads", "-1"], "--threads"),
    (["search", "--out", "x.slt", "--method", "lnp", "--trials", "9223372036854775808"], "--trials"),
    (["search", "--out", "x.slt", "--method", "lnp", "--hidden", "99999999999999999999999"], "--hidden"),
    (["search", "--out", "/proc/self/status", "--epochs", "1", "--rounds", "1", "--hidden", "8"], "--out"),
])
def test_hostile_values_are_one_line_naming_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 64), np.float32))
    _one_line(args, flag, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_a_newline_in_a_quoted_path_stays_on_one_line(tmp_path: Path) -> None:
    line = _one_line(["inspect", str(tmp_path / "new\nline.slt")], "new\\nline.slt", tmp_path)
    assert "\n" not in line


def test_export_c_force_over_a_foreign_folder_names_the_flag(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "main.c").write_text("int main(void) { return 0; }")
    line = _one_line(["export", TICKET, "--to", "c", "-o", "out", "--force"], "-o/--output", tmp_path)
    assert "holds 'main.c', which slt did not write" in line or "no readable .slt-manifest.json" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["main.c"]


def test_name_the_flag_picks_the_longest_quoted_value_and_keeps_named_messages() -> None:
    given = {"-o/--output": Path("/tmp/a/out.slt"), "--target": "cpu", "--binary-from": "ticket", "--json": False}
    assert name_the_flag("cannot write '/tmp/a/out.slt': no", given) == "-o/--output: cannot write '/tmp/a/out.slt': no"
    assert name_the_flag("unknown target 'cpu'", given) == "--target: unknown target 'cpu'"
    assert name_the_flag("--output is a folder '/tmp/a/out.slt'", given) == "--output is a folder '/tmp/a/out.slt'"
    assert name_the_flag("give a file (e.g. ticket.slt)", given) == "give a file (e.g. ticket.slt)"


def test_energy_figures_onto_a_file_names_the_flag(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 64), np.float32))
    (tmp_path / "regular").write_text("not a folder")
    _one_line(["energy", TICKET, "-i", "x.npy", "--figures", "regular"], "--figures", tmp_path)
    assert (tmp_path / "regular").read_text() == "not a folder"
