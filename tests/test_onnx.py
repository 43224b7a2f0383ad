"""ONNX export and the ONNX Runtime target: spike for spike equal to the reference, compact, checked.

The oracle is the reference simulator (float32). Every comparison is exact (np.array_equal):
output, per-layer spike counts, and every recorded node's values.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from slt_deploy.exporters.onnx import FORMAT_TAG, OPSET, build_model, export_onnx, model_digest
from slt_deploy.targets.onnxruntime import compile_ticket, load_onnx_file, run, run_onnx_file
from strategies import ENCODINGS, FAMILIES, KINDS, inputs, ticket_and_input, tickets

import slt_deploy as slt
from slt_deploy import exact
from slt_deploy.errors import SltFormatError, SltInputError
from slt_deploy.ir import (
    LI,
    LIF,
    Add,
    AvgPool2d,
    BinaryWeights,
    Conv2d,
    Edge,
    Encoding,
    Flatten,
    FloatWeights,
    Input,
    Int8Weights,
    Linear,
    MaxPool2d,
    Output,
    SumPool2d,
    sequential,
)
from slt_deploy.reference import simulate

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STORAGES = ("auto", "dense", "bitmask", "index", "float32")
MODES = ("loop", "unrolled")


def assert_same(ticket: slt.Ticket, x: np.ndarray, got: slt.Result, all_layers: bool = True) -> None:
    before = exact.fallback_count()
    ref = simulate(ticket, x)
    fell_back = exact.fallback_count() != before
    try:
        assert got.output.dtype == np.float32
        assert got.output.shape == ref.output.shape
        assert np.array_equal(got.output, ref.output)
        assert got.spiking == ref.spiking
        assert set(got.spike_counts) == set(ref.spike_counts)
        for name, counts in ref.spike_counts.items():
            assert np.array_equal(got.spike_counts[name], counts), name
        names = ref.layers if all_layers else [n.name for n in ticket.neuron_layers()]
        for name in names:
            assert np.array_equal(got.layers[name], ref.layers[name]), f"node {name} ({ticket.node(name).kind})"
    except AssertionError:
        if fell_back:
            # A sum float64 cannot hold exactly (terms spanning ~2^50): ONNX Runtime's own
            # float64 order may round it differently (docs/targets-onnx.md). Rare; set aside.
            reject()
        raise


# --------------------------------------------------------------------- exactness on random tickets
@settings(max_examples=120, **SETTINGS)
@given(ticket_and_input(max_timesteps=5), st.sampled_from(MODES), st.sampled_from(STORAGES))
def test_random_tickets_equal_the_reference_exactly(tx: tuple, mode: str, weights: str) -> None:
    ticket, x = tx
    assert_same(ticket, x, run(ticket, x, mode=mode, weights=weights))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_family_and_weight_kind(family: str, kind: str) -> None:
    @settings(max_examples=12, **SETTINGS)
    @given(ticket_and_input(families=(family,), kinds=(kind,)))
    def check(tx: tuple) -> None:
        ticket, x = tx
        assert_same(ticket, x, run(ticket, x))

    check()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_input_encoding(encoding: str) -> None:
    @settings(max_examples=15, **SETTINGS)
    @given(ticket_and_input(encodings=(encoding,), max_timesteps=6))
    def check(tx: tuple) -> None:
        ticket, x = tx
        assert_same(ticket, x, run(ticket, x, mode="unrolled"))

    check()


@settings(max_examples=40, **SETTINGS)
@given(ticket_and_input(max_timesteps=4), st.sampled_from(MODES), st.sampled_from(STORAGES))
def test_exported_files_pass_the_full_checker_and_run_exactly(tmp_path_factory: pytest.TempPathFactory,
                                                               tx: tuple, mode: str, weights: str) -> None:
    ticket, x = tx
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    report = export_onnx(ticket, path, mode=mode, weights=weights, record="all")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert any(o.domain in ("", "ai.onnx") and o.version == OPSET >= 17 for o in model.opset_import)
    assert report["file_bytes"] == os.path.getsize(path)
    assert report["mode"] == mode and report["timesteps"] == ticket.timesteps
    assert_same(ticket, x, run_onnx_file(path, x))


def test_record_levels_keep_spike_counts(tmp_path: Path) -> None:
    ticket = digits_like_ticket()
    x = np.random.default_rng(3).random((4, 64)).astype(np.float32)
    ref = simulate(ticket, x)
    for record in ("neurons", "output"):
        path = tmp_path / f"{record}.onnx"
        export_onnx(ticket, path, record=record)
        got = run_onnx_file(path, x)
        assert np.array_equal(got.output, ref.output)
        if record == "neurons":
            assert {k: v.tolist() for k, v in got.spike_counts.items()} == \
                   {k: v.tolist() for k, v in ref.spike_counts.items()}
        else:
            assert got.spike_counts == {}


# --------------------------------------------------------------------- float64 sums on analog input
@pytest.mark.parametrize("kind", ["float32", "binary", "int8"])
def test_analog_input_float64_sums_round_like_the_reference(kind: str) -> None:
    """Heavy-tailed analog input (values spanning ~1e-8 .. 1e8) through float64 MatMul / im2col Conv."""
    rng = np.random.default_rng(7)
    mask = rng.random((96, 200)) < 0.5
    if kind == "float32":
        w = FloatWeights(mask, rng.normal(0, 0.1, mask.shape).astype(np.float32))
    elif kind == "binary":
        w = BinaryWeights(mask, rng.random(mask.shape) < 0.5, np.float32(0.05))
    else:
        w = Int8Weights(mask, rng.integers(-128, 128, mask.shape).astype(np.int8), np.float32(1e-3))
    fc = sequential((200,), [Linear("fc", w, rng.normal(0, 0.1, 96).astype(np.float32)),
                             LIF("lif", shape=(96,), beta=0.9)], 3)
    x = (rng.normal(0, 1, (64, 200)) * np.exp(rng.normal(0, 4, (64, 200)))).astype(np.float32)
    assert_same(fc, x, run(fc, x))

    cw = FloatWeights(rng.random((6, 4, 3, 3)) < 0.7, rng.normal(0, 0.2, (6, 4, 3, 3)).astype(np.float32))
    conv = sequential((4, 9, 9), [Conv2d("conv", cw, padding=(1, 1), stride=(2, 1), dilation=(1, 2)),
                                  SumPool2d("pool", kernel_size=(2, 2), padding=(1, 1)),
                                  LIF("lif", shape=(6, 3, 4), beta=0.5), Flatten("flat")], 2)
    xc = (rng.normal(0, 1, (16, 4, 9, 9)) * np.exp(rng.normal(0, 4, (16, 4, 9, 9)))).astype(np.float32)
    assert_same(conv, xc, run(conv, xc))


# --------------------------------------------------------------------- dynamic batch, sizes
def digits_like_ticket(seed: int = 0, encoding: Encoding = Encoding()) -> slt.Ticket:
    rng = np.random.default_rng(seed)
    w1 = BinaryWeights(rng.random((128, 64)) < 0.2, rng.random((128, 64)) < 0.5, rng.uniform(0.1, 0.3, 128))
    w2 = BinaryWeights(rng.random((10, 128)) < 0.3, rng.random((10, 128)) < 0.5, np.float32(0.4))
    return sequential((64,), [Linear("fc1", w1), LIF("lif1", shape=(128,), beta=0.875),
                              Linear("fc2", w2), LIF("lif2", shape=(10,), reset="subtract")], 8, encoding)


@pytest.mark.parametrize("encoding", [Encoding(), Encoding("rate", 5)])
def test_one_file_runs_any_batch_size(tmp_path: Path, encoding: Encoding) -> None:
    ticket = digits_like_ticket(encoding=encoding)
    path = tmp_path / "m.onnx"
    report = export_onnx(ticket, path)
    assert report["input"]["shape"][-2] == "batch"
    program = load_onnx_file(path)
    for batch in (1, 7):
        x = np.random.default_rng(batch).random((batch, 64)).astype(np.float32)
        got = program.run(x)
        assert got.output.shape == (8, batch, 10)
        assert_same(ticket, x, got, all_layers=False)


def sparse_mlp(p: float = 0.03, T: int = 8, seed: int = 0) -> slt.Ticket:
    rng = np.random.default_rng(seed)
    sizes, layers = [784, 1024, 1024, 10], []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        alpha = (rng.uniform(0.5, 1.5, b) / np.sqrt(p * a)).astype(np.float32)
        layers += [Linear(f"fc{i}", BinaryWeights(rng.random((b, a)) < p, rng.random((b, a)) < 0.5, alpha)),
                   LIF(f"lif{i}", shape=(b,), beta=0.9)]
    return sequential((784,), layers, T, Encoding("rate", 0))


def test_sparse_binary_weights_are_stored_compactly(tmp_path: Path) -> None:
    """784-1024-1024-10 at 3% density: the file is far below dense fp32 (and below int8 codes)."""
    ticket = sparse_mlp()
    path = tmp_path / "mlp.onnx"
    report = export_onnx(ticket, path)
    synapses = sum(w.weights.mask.size for w in ticket.synapse_layers())
    assert report["dense_fp32_weight_bytes"] == 4 * synapses
    assert report["file_bytes"] == os.path.getsize(path)
    assert report["dense_fp32_file_bytes"] > 4 * synapses
    assert report["file_bytes"] * 20 < report["dense_fp32_file_bytes"]
    assert report["file_bytes"] < synapses / 4  # < 2 bits per synapse, below a packed bitmask
    assert {row["storage"] for row in report["layers"]} <= {"index", "bitmask"}
    assert all(row["sum"].startswith("float32") for row in report["layers"])  # rate input: exact integer sums
    x = np.random.default_rng(0).random((3, 784)).astype(np.float32)
    assert_same(ticket, x, run_onnx_file(path, x), all_layers=False)


def test_storage_choice_follows_density() -> None:
    rng = np.random.default_rng(0)
    rows = {}
    for p in (0.02, 0.5, 1.0):
        w = BinaryWeights(rng.random((64, 256)) < p, rng.random((64, 256)) < 0.5, np.float32(0.1))
        t = sequential((256,), [Linear("fc", w), LIF("lif", shape=(64,))], 2)
        rows[p] = build_model(t).layers[0]
    assert rows[0.02]["storage"] == "index"
    assert rows[0.5]["storage"] == "bitmask"
    assert rows[1.0]["storage"] == "bitmask" and rows[1.0]["bytes"] == 2 * 64 * 256 // 8


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gap_dtype", ["uint8", "uint16"])
def test_index_code_escapes_long_gaps(tmp_path: Path, kind: str, gap_dtype: str) -> None:
    """Gaps of 255+ (uint8 code) and 65535+ (uint16 code) positions go through escape entries."""
    rng = np.random.default_rng(11)
    mask = np.zeros((40, 5000), bool)
    if gap_dtype == "uint8":
        at = np.r_[np.arange(0, 100_000, 100), [100_300, 100_301, 100_556, 101_200, 199_999]]
    else:
        at = np.array([0, 3, 300, 301, 70_000, 70_254, 70_255, 70_256, 199_999])
    mask.flat[at] = True
    values = rng.normal(0, 1, mask.shape).astype(np.float32)
    w = {"binary": BinaryWeights(mask, values < 0, np.float32(0.5)),
         "int8": Int8Weights(mask, rng.integers(-128, 128, mask.shape).astype(np.int8), np.float32(0.01)),
         "float32": FloatWeights(mask, values)}[kind]
    ticket = sequential((5000,), [Linear("fc", w), LIF("lif", shape=(40,), beta=0.5, threshold=0.1)], 3,
                        Encoding("rate", 1))
    report = export_onnx(ticket, tmp_path / "m.onnx", weights="index")
    assert report["layers"][0]["storage"] == "index"
    gaps = [t for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer if t.name.startswith("fc_gaps")]
    assert [onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in gaps] == [gap_dtype]
    x = np.random.default_rng(1).random((4, 5000)).astype(np.float32)
    assert_same(ticket, x, run_onnx_file(tmp_path / "m.onnx", x), all_layers=False)


def test_loop_and_unrolled_graphs_agree(tmp_path: Path) -> None:
    ticket = digits_like_ticket(encoding=Encoding("spikes"))
    x = (np.random.default_rng(2).random((8, 5, 64)) < 0.3).astype(np.float32)
    outs = []
    for mode in MODES:
        export_onnx(ticket, tmp_path / f"{mode}.onnx", mode=mode)
        outs.append(run_onnx_file(tmp_path / f"{mode}.onnx", x).output)
    assert np.array_equal(outs[0], outs[1])
    loop = onnx.load(str(tmp_path / "loop.onnx"))
    assert [n.op_type for n in loop.graph.node].count("Loop") == 1


def test_target_runs_with_graph_optimizations_disabled() -> None:
    program = compile_ticket(digits_like_ticket())
    assert program.options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # the weight decoders were folded into initializers: no decoder op is left in the session's graph
    ops = {n.op_type for n in program.model.graph.node}
    assert not ops & {"BitShift", "BitwiseAnd", "CumSum", "ScatterElements"}
    assert "Loop" in ops


# --------------------------------------------------------------------- API and CLI
def test_api_dispatch(tmp_path: Path) -> None:
    ticket = digits_like_ticket()
    x = np.random.default_rng(4).random((2, 64)).astype(np.float32)
    report = slt.export(ticket, tmp_path / "m.onnx", to="onnx")
    assert report["format"] == "onnx" and report["file_bytes"] > 0
    got = slt.run(ticket, x, target="onnxruntime")
    assert got.target == "onnxruntime"
    assert_same(ticket, x, got)


def test_cli_export_and_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    runner = CliRunner()
    ticket = digits_like_ticket(seed=1)
    slt.save(ticket, tmp_path / "t.slt")
    x = np.random.default_rng(5).random((6, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(app, ["export", str(tmp_path / "t.slt"), "--to", "onnx", "-o", str(tmp_path / "m.onnx"),
                              "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["format"] == "onnx" and doc["report"]["file_bytes"] == os.path.getsize(tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    res = runner.invoke(app, ["run", str(tmp_path / "t.slt"), "--target", "onnxruntime", "--input",
                              str(tmp_path / "x.npy"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    ref = simulate(ticket, x)
    assert doc["target"] == "onnxruntime"
    assert doc["predictions"] == ref.predictions().tolist()
    assert doc["spike_counts"] == {k: v.tolist() for k, v in ref.spike_counts.items()}
    assert np.array_equal(run_onnx_file(tmp_path / "m.onnx", x).output, ref.output)


# --------------------------------------------------------------------- untrusted files
def _valid_model_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "good.onnx"
    export_onnx(digits_like_ticket(), path)
    return path.read_bytes()


def _assert_format_error(path: Path, x: np.ndarray) -> str:
    with pytest.raises(SltFormatError) as info:
        run_onnx_file(path, x)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 600
    return message


def test_bad_files_give_one_line_format_errors(tmp_path: Path) -> None:
    good = _valid_model_bytes(tmp_path)
    x = np.zeros((1, 64), np.float32)
    cases = {
        "empty.onnx": b"",
        "garbage.onnx": os.urandom(2048),
        "text.onnx": b"this is not a protobuf\n" * 10,
    }
    for cut in (1, 7, 100, len(good) // 3, len(good) // 2, len(good) - 40, len(good) - 1):
        cases[f"truncated{cut}.onnx"] = good[:cut]
    for at in (len(good) // 2, len(good) // 3, len(good) - 200):  # corrupt weights, names, attributes
        flipped = bytearray(good)
        flipped[at] ^= 0x10
        cases[f"flipped{at}.onnx"] = bytes(flipped)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        _assert_format_error(tmp_path / name, x)
    assert "no such file" in _assert_format_error(tmp_path / "missing.onnx", x)
    assert "directory" in _assert_format_error(tmp_path, x)


def _edit(tmp_path: Path, name: str, change, restamp: bool = True) -> Path:  # noqa: ANN001
    """A hostile file: ``change`` applied, the graph checksum forged to match (unless ``restamp`` is False)."""
    model = onnx.load_model_from_string(_valid_model_bytes(tmp_path))
    change(model)
    if restamp:
        for p in model.metadata_props:
            if p.key == "slt_deploy.sha256":
                p.value = model_digest(model)
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def test_models_that_lie_are_refused(tmp_path: Path) -> None:
    x = np.zeros((1, 64), np.float32)

    def drop_metadata(m) -> None:  # noqa: ANN001
        del m.metadata_props[:]

    def bad_timesteps(m) -> None:  # noqa: ANN001
        for p in m.metadata_props:
            if p.key == "slt_deploy.timesteps":
                p.value = "many"

    def bad_records(m) -> None:  # noqa: ANN001
        for p in m.metadata_props:
            if p.key == "slt_deploy.records":
                p.value = json.dumps([{"output": "nope", "node": "x", "kind": "lif", "shape": [3]}])

    def wrong_output_shape(m) -> None:  # noqa: ANN001
        for p in m.metadata_props:
            if p.key == "slt_deploy.output_shape":
                p.value = "[11]"

    def external_data(m) -> None:  # noqa: ANN001
        t = m.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", "../../../../etc/passwd"

    def broken_graph(m) -> None:  # noqa: ANN001
        del m.graph.node[len(m.graph.node) // 2]

    def unknown_op(m) -> None:  # noqa: ANN001
        m.graph.node[0].op_type = "NoSuchOp"

    for name, change, words in [("meta.onnx", drop_metadata, "not an slt-deploy"),
                                ("t.onnx", bad_timesteps, "metadata"),
                                ("rec.onnx", bad_records, "no output"),
                                ("shape.onnx", wrong_output_shape, "expected float32"),
                                ("ext.onnx", external_data, "external data"),
                                ("graph.onnx", broken_graph, "checker"),
                                ("op.onnx", unknown_op, "checker")]:
        message = _assert_format_error(_edit(tmp_path, name, change), x)
        assert words in message, message
    for change in (broken_graph, unknown_op):  # edited without forging the checksum
        assert "checksum" in _assert_format_error(_edit(tmp_path, "edit.onnx", change, restamp=False), x)
    assert FORMAT_TAG.startswith("slt-deploy-onnx/")


def test_wrong_input_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    export_onnx(digits_like_ticket(), path)
    with pytest.raises(SltInputError):
        run_onnx_file(path, np.zeros((2, 63), np.float32))
    with pytest.raises(SltInputError):
        run_onnx_file(path, np.full((2, 64), np.nan, np.float32))


# --------------------------------------------------------------------- examples
def test_quickstart_example_ticket() -> None:
    pytest.importorskip("snntorch")
    torch = pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
    if spec is None or spec.loader is None or not (ROOT / "examples" / "quickstart.py").exists():
        pytest.skip("examples/quickstart.py not present")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model()
    x = np.random.default_rng(0).integers(0, 17, size=(32, 64)).astype(np.float32) / 16
    ticket = slt.from_torch(model, torch.from_numpy(x[:1]), timesteps=8, binarize=True)
    assert_same(ticket, x, run(ticket, x))


@pytest.mark.parametrize("name", ["digits-mlp-imp-binary", "digits-mlp-et-binary", "digits-conv-imp-binary"])
def test_example_tickets(tmp_path: Path, name: str) -> None:
    pytest.importorskip("sklearn")
    from slt_deploy.demo import load_digits_split

    ticket = slt.load(Path(__file__).resolve().parent.parent / "examples" / f"{name}.slt")
    x = load_digits_split(0)[2].reshape((-1, *ticket.input_shape))
    export_onnx(ticket, tmp_path / "digits.onnx")
    assert_same(ticket, x, run_onnx_file(tmp_path / "digits.onnx", x), all_layers=False)


@pytest.mark.slow
@settings(max_examples=600, **SETTINGS)
@given(ticket_and_input(max_timesteps=6), st.sampled_from(MODES), st.sampled_from(STORAGES))
def test_many_random_tickets(tx: tuple, mode: str, weights: str) -> None:
    ticket, x = tx
    assert_same(ticket, x, run(ticket, x, mode=mode, weights=weights))


@settings(max_examples=10, **SETTINGS)
@given(st.data())
def test_rate_tickets_reencode_from_the_stored_seed(data: st.DataObject) -> None:
    ticket = data.draw(tickets(encodings=("rate",), max_timesteps=6))
    x = data.draw(inputs(ticket, max_batch=4))
    model = build_model(ticket).model
    props = {p.key: p.value for p in model.metadata_props}
    assert props["slt_deploy.encoding"] == "rate" and int(props["slt_deploy.seed"]) == ticket.encoding.seed
    assert_same(ticket, x, run(ticket, x))


# --------------------------------------------------------------------- the exported bytes, pinned
def pinned_conv_ticket() -> slt.Ticket:
    """Direct analog input: float64 im2col and window sums, then exact float32 ones (spikes), every pool."""
    rng = np.random.default_rng(2024)
    c1 = BinaryWeights(rng.random((4, 1, 3, 3)) < 0.6, rng.random((4, 1, 3, 3)) < 0.5,
                       rng.uniform(0.2, 0.6, 4).astype(np.float32))
    c2 = Int8Weights(rng.random((4, 2, 2, 2)) < 0.7, rng.integers(-128, 128, (4, 2, 2, 2)).astype(np.int8),
                     np.float32(0.02))
    fc = FloatWeights(rng.random((3, 16)) < 0.8, rng.normal(0, 0.5, (3, 16)).astype(np.float32))
    layers = [
        Conv2d("conv1", c1, rng.normal(0, 0.1, 4).astype(np.float32), stride=(1, 1), padding=(1, 1),
               dilation=(1, 1), groups=2),
        AvgPool2d("avg", kernel_size=(2, 2), stride=(1, 1), padding=(1, 0)),
        LIF("lif1", shape=(4, 8, 6), threshold=0.5, reset="subtract_delayed", charge="decay_input", tau=2.0),
        SumPool2d("sum", kernel_size=(2, 2), stride=(2, 2)),
        Conv2d("conv2", c2, stride=(1, 1), padding=(0, 1), dilation=(1, 1), groups=2),
        MaxPool2d("max", kernel_size=(2, 2), stride=(2, 2), padding=(1, 0)),
        LIF("lif2", shape=(4, 2, 2), beta=rng.uniform(0.5, 1.0, (4, 2, 2)).astype(np.float32), reset="subtract"),
        Flatten("flat"),
        Linear("fc", fc, rng.normal(0, 0.1, 3).astype(np.float32)),
        LI("readout", shape=(3,), beta=0.9),
    ]
    return sequential((2, 7, 7), layers, 3, Encoding(), input_name="image", output_name="logits")


def pinned_recurrent_ticket() -> slt.Ticket:
    """Rate input, exact float32 sums, a residual join and a recurrent edge, every charge."""
    rng = np.random.default_rng(7)
    n, m = 6, 5
    w_in = Int8Weights(rng.random((m, n)) < 0.5, rng.integers(-128, 128, (m, n)).astype(np.int8),
                       rng.uniform(0.005, 0.02, m).astype(np.float32))
    w_rec = BinaryWeights(rng.random((m, m)) < 0.4, rng.random((m, m)) < 0.5, np.float32(0.3))
    w_skip = BinaryWeights(rng.random((m, n)) < 0.3, rng.random((m, n)) < 0.5, np.float32(0.25))
    w_out = FloatWeights(rng.random((4, m)) < 0.9, rng.normal(0, 0.7, (4, m)).astype(np.float32))
    nodes = [
        Input("x", shape=(n,)),
        Linear("fc_in", w_in, rng.normal(0, 0.05, m).astype(np.float32)),
        Linear("rec", w_rec),
        Linear("skip", w_skip),
        Add("join"),
        LIF("lif", shape=(m,), threshold=rng.uniform(0.5, 1.0, m).astype(np.float32), reset="subtract",
            charge="leaky_tau", tau=rng.uniform(1.0, 4.0, m).astype(np.float32), bias=np.float32(0.05)),
        Linear("fc_out", w_out),
        LIF("lif_out", shape=(4,), beta=0.75, reset="zero"),
        Output("y"),
    ]
    edges = [Edge("x", "fc_in"), Edge("x", "skip"), Edge("fc_in", "join"), Edge("rec", "join"),
             Edge("skip", "join"), Edge("join", "lif"), Edge("lif", "rec", recurrent=True), Edge("lif", "fc_out"),
             Edge("fc_out", "lif_out"), Edge("lif_out", "y")]
    return slt.Ticket(tuple(nodes), tuple(edges), 4, Encoding("rate", 12345))


PINNED = {  # sha256 of the serialized model (producer_version blanked): computed before the exporter's refactor
    # (the rate-coded 'recurrent' pins re-taken for issue 11: same graph bytes, the metadata names the rate code)
    ("conv", "loop", "auto", "neurons"):
        "273c525a240f70345f92d86b92ce14401abcca7f707c8373bca86707daf078ff",
    ("conv", "unrolled", "index", "all"):
        "e20b3786d63f95f9c6228a992d1ce3e27e28315ceaf70095e9841c8f8ed7bce7",
    ("conv", "loop", "float32", "output"):
        "b1f6fc1b439b561dc9cbf6c1240be0271ae68ca58f8bbc2afb6c5aaa2cd3638a",
    ("recurrent", "loop", "auto", "neurons"):
        "d3334858ea2f87e497810e1db109e710fcd4291089fe64cd50892e32109111e6",
    ("recurrent", "unrolled", "bitmask", "all"):
        "f6da10cb6a69a13793146711b36fbd60374ba8388d7213e87faea4f98b466f28",
    ("recurrent", "loop", "dense", "all"):
        "4a37e8f81cfe45580391caffc87d1171179e9db5bd6639d632ad18f665396530",
}


@pytest.mark.parametrize("key", sorted(PINNED))
def test_exported_model_bytes_are_pinned(key: tuple[str, str, str, str]) -> None:
    """The same ticket gives the same ONNX model, byte for byte (guards refactors of the exporter).

    The pins exclude only ``producer_version`` (the package version). A change here means the
    exporter writes a different graph: re-pin only after checking the new graph is intended
    (and still spike-exact: the test also runs it against the reference).
    """
    name, mode, weights, record = key
    ticket = {"conv": pinned_conv_ticket, "recurrent": pinned_recurrent_ticket}[name]()
    model = build_model(ticket, mode=mode, weights=weights, record=record).model
    props = {p.key: p.value for p in model.metadata_props}
    assert props["slt_deploy.sha256"] == model_digest(model)
    model.producer_version = ""
    assert model_digest(model) == PINNED[key]
    if weights == "auto":
        x = np.random.default_rng(3).normal(0.5, 0.4, (3, *ticket.input_shape)).astype(np.float32)
        if ticket.encoding.kind == "rate":
            x = np.clip(x, 0, 1)
        assert_same(ticket, x, run(ticket, x, mode=mode, weights=weights, record=record))
