"""ONNX models as untrusted input: a re-signed hostile model (the sha256 recomputed, as anybody
can) is still refused when its Loop trip count disagrees with T, a parameter is NaN/inf, or its
metadata JSON nests 5000 deep; the CLI prints exactly one `slt: error:` line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from slt_deploy.exporters.onnx import META, model_digest  # noqa: E402
from slt_deploy.targets.onnxruntime import run_onnx_file  # noqa: E402

import slt_deploy as slt  # noqa: E402
from slt_deploy.errors import SltFormatError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICKET = ROOT / "examples" / "digits-mlp-imp-binary.slt"


def _digits(n: int = 4) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data[:n] / 16).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    slt.export(slt.load(TICKET), path, to="onnx")
    return path


def _resigned(model: onnx.ModelProto, path: Path) -> Path:
    for p in model.metadata_props:
        if p.key == META["sha256"]:
            p.value = model_digest(model)
    path.write_bytes(model.SerializeToString())
    return path


def _trip_initializer(model: onnx.ModelProto) -> onnx.TensorProto:
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    return next(t for t in model.graph.initializer if t.name == loop.input[0])


def test_the_exported_model_still_runs_exactly(exported: Path) -> None:
    want = slt.run(slt.load(TICKET), _digits())
    got = run_onnx_file(exported, _digits())
    assert np.array_equal(got.output, want.output)


def test_a_loop_trip_count_other_than_t_is_refused(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(exported)
    _trip_initializer(model).CopyFrom(onnx.numpy_helper.from_array(np.asarray(10**12, np.int64),
                                                                    _trip_initializer(model).name))
    with pytest.raises(SltFormatError, match="runs 1000000000000 times, the model's metadata says T=8"):
        run_onnx_file(_resigned(model, tmp_path / "trip.onnx"), _digits())


def test_a_loop_without_trip_count_is_refused(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(exported)
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    loop.input[0] = ""
    with pytest.raises(SltFormatError, match="has no trip count"):
        run_onnx_file(_resigned(model, tmp_path / "while.onnx"), _digits())


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_refused(exported: Path, tmp_path: Path, value: float) -> None:
    model = onnx.load(exported)
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    assert floats
    target = floats[0]
    arr = onnx.numpy_helper.to_array(target).copy()
    arr.reshape(-1)[0] = value
    target.CopyFrom(onnx.numpy_helper.from_array(arr, target.name))
    with pytest.raises(SltFormatError, match="NaN or inf"):
        run_onnx_file(_resigned(model, tmp_path / "nan.onnx"), _digits())


def test_deeply_nested_metadata_json_is_one_typed_line(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(exported)
    for p in model.metadata_props:
        if p.key == META["records"]:
            p.value = "[" * 5000 + "]" * 5000
    with pytest.raises(SltFormatError, match="nested too deeply"):
        run_onnx_file(_resigned(model, tmp_path / "deep.onnx"), _digits())


def test_cli_prints_one_error_line(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(exported)
    _trip_initializer(model).CopyFrom(onnx.numpy_helper.from_array(np.asarray(10**12, np.int64),
                                                                    _trip_initializer(model).name))
    bad = _resigned(model, tmp_path / "trip.onnx")
    x = tmp_path / "x.npy"
    np.save(x, _digits())
    res = subprocess.run([sys.executable, "-m", "slt_deploy", "run", str(bad), "-i", str(x), "--target", "onnxruntime"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slt: error:") and "T=8" in lines[0], res.stderr


def test_a_run_time_failure_of_onnx_runtime_is_one_line_without_its_log(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(exported)  # a re-signed model whose first layer's bias shape no longer fits: fails in ORT
    shape = next(t for t in model.graph.initializer if t.name.startswith("shape_") and t.data_type == 7
                 and onnx.numpy_helper.to_array(t).tolist() == [128])
    shape.CopyFrom(onnx.numpy_helper.from_array(np.array([127], np.int64), shape.name))
    bad = _resigned(model, tmp_path / "fails.onnx")
    x = tmp_path / "x.npy"
    np.save(x, _digits())
    res = subprocess.run([sys.executable, "-m", "slt_deploy", "run", str(bad), "-i", str(x), "--target", "onnxruntime"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slt: error:") and "ONNX Runtime failed" in lines[0], res.stderr
    assert "\x1b[" not in res.stderr
