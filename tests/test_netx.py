"""lava-dl netx HDF5 export (exporters/netx.py), its reader, and conformance with lava-dl itself.

The conformance test loads the exported file with lava-dl 0.6.0's own
``lava.lib.dl.netx.hdf5.Network``. lava-dl pins torch 2.3 and cannot be installed here, so at
test time only: ``pip download --no-deps lava-dl==0.6.0`` into pytest's cache, put only its
``lava/lib/dl/netx`` on the import path, and stub the ``slayer`` module netx imports (only
its resonate-and-fire helper, unused by CUBA layers). No lava-dl code is kept in the repo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from slt_deploy.exporters.netx import export_netx, import_netx, read_netx

from slt_deploy import api
from slt_deploy.errors import SltFormatError, SltUnsupportedError
from slt_deploy.fixed_point import simulate_fixed, to_fixed
from slt_deploy.ir import (
    IF,
    LI,
    LIF,
    Add,
    BinaryWeights,
    Conv2d,
    Edge,
    Encoding,
    Flatten,
    Input,
    Linear,
    MaxPool2d,
    Output,
    Ticket,
    sequential,
)
from slt_deploy.reference import simulate

h5py = pytest.importorskip("h5py")

LAVA_DL = "lava-dl==0.6.0"


def binary(rng: np.random.Generator, shape: tuple[int, ...], alpha: float, p: float = 0.6) -> BinaryWeights:
    return BinaryWeights(rng.random(shape) < p, rng.random(shape) < 0.3, np.full(shape[0], alpha, np.float32))


def mlp(**lif) -> object:
    rng = np.random.default_rng(0)
    return sequential((12,), [Linear("fc1", binary(rng, (10, 12), 0.5)), LIF("l1", (10,), threshold=0.5, **lif),
                              Linear("fc2", binary(rng, (4, 10), 0.25)), LIF("l2", (4,), beta=0.5, threshold=0.5)],
                      6, Encoding("spikes"))


def conv_net() -> object:
    rng = np.random.default_rng(3)
    conv = Conv2d("conv", binary(rng, (3, 2, 3, 3), 0.5, 0.7), stride=(1, 2), padding=(1, 1))
    shape = conv.out_shape([(2, 6, 6)])
    pooled = (3, shape[1] // 2, shape[2])
    return sequential((2, 6, 6), [conv, IF("l1", shape, threshold=0.5), MaxPool2d("mp", kernel_size=(2, 1)),
                                  Flatten("flat"), Linear("fc", binary(rng, (4, int(np.prod(pooled))), 0.5)),
                                  IF("l2", (4,), threshold=0.5)], 5, Encoding("spikes"))


def direct_mlp() -> object:
    rng = np.random.default_rng(4)
    return sequential((6,), [Linear("fc1", binary(rng, (8, 6), 0.5)), LIF("l1", (8,), threshold=1.0),
                             Linear("fc2", binary(rng, (3, 8), 0.5)), LIF("l2", (3,), threshold=0.5)],
                      5, Encoding("direct"))


def biased_mlp() -> object:
    """Three layers with biases on the synapses (nn.Linear's default) and on the neurons, some strong enough
    to fire on the bias alone: without netx's reset the deeper layers would integrate them early."""
    rng = np.random.default_rng(5)
    return sequential((6,), [
        Linear("fc1", binary(rng, (8, 6), 0.5), bias=(rng.integers(-4, 5, 8) / 8).astype(np.float32)),
        LIF("l1", (8,), beta=0.75, threshold=1.0),
        Linear("fc2", binary(rng, (6, 8), 0.5), bias=np.linspace(-0.5, 1.25, 6).astype(np.float32)),
        LIF("l2", (6,), beta=0.875, threshold=0.5),
        Linear("fc3", binary(rng, (3, 6), 0.5)),
        LIF("l3", (3,), threshold=0.5, bias=np.float32(0.25))], 6, Encoding("direct"))


def biased_conv() -> object:
    """A conv net like the search's: per-channel conv bias (BatchNorm folded), max pool of spikes, biased readout."""
    rng = np.random.default_rng(6)
    conv = Conv2d("conv", binary(rng, (3, 2, 3, 3), 0.5, 0.7), bias=np.array([0.25, -0.5, 0.75], np.float32),
                  padding=(1, 1))
    shape = conv.out_shape([(2, 4, 4)])
    return sequential((2, 4, 4), [conv, LIF("l1", shape, beta=0.5, threshold=0.5), MaxPool2d("mp", kernel_size=2),
                                  Flatten("flat"),
                                  Linear("fc", binary(rng, (4, 12), 0.5), bias=np.full(4, 0.5, np.float32)),
                                  LIF("l2", (4,), threshold=0.5)], 5, Encoding("spikes"))


def spikes(ticket, batch: int = 1, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((ticket.timesteps, batch, *ticket.input_shape)) < 0.5).astype(np.float32)


# ------------------------------------------------------------------ layout and round trip
def test_export_writes_the_netx_layout_with_lavas_integers(tmp_path: Path) -> None:
    ticket = mlp()
    report = api.export(ticket, tmp_path / "net.h5", to="netx")
    fixed = to_fixed(ticket)
    assert report["types"] == ["dense", "dense"] and report["delay_steps"] == 2
    assert report["same_as_lava_target"] and report["spikes_equal_reference"] is True
    with h5py.File(tmp_path / "net.h5", "r") as f:
        assert f["layer/0/type"][0] == b"input" and list(f["layer/0/shape"][()]) == [12]
        for i, layer in enumerate(fixed.layers, start=1):
            g = f[f"layer/{i}"]
            assert g["type"][0] == b"dense" and g["neuron/type"][0] == b"CUBA"
            assert g["neuron/iDecay"][()] == 4096 and g["neuron/vDecay"][()] == layer.dv[0]
            assert g["neuron/vThMant"][()] == layer.vth and g["neuron/refDelay"][()] == 1
            np.testing.assert_array_equal(g["weight"][()], layer.synapses[0].W.todense(np.int64))
        assert f["simulation/tSample"][()] == 6


def test_conv_graph_exports_conv_flatten_dense(tmp_path: Path) -> None:
    ticket = conv_net()
    report = export_netx(ticket, tmp_path / "c.h5")
    assert report["types"] == ["conv", "conv", "flatten", "dense"]
    net = read_netx(tmp_path / "c.h5")
    conv = net.layers[0]
    assert conv.shape == (3, 6, 3) and conv.stride == (1, 2) and conv.padding == (1, 1)
    np.testing.assert_array_equal(conv.weight, to_fixed(ticket).layers[0].synapses[0].conv.kernel)
    assert net.layers[1].groups == 3  # the max-pool of spikes: an OR of each window as a grouped conv


@pytest.mark.parametrize("make", [mlp, conv_net])
def test_import_back_computes_the_fixed_point_spikes(tmp_path: Path, make) -> None:
    ticket = make()
    export_netx(ticket, tmp_path / "n.h5")
    back = import_netx(tmp_path / "n.h5")
    x = spikes(ticket, 3)
    np.testing.assert_array_equal(simulate(back, x).output, simulate_fixed(ticket, x, clamp_conv=False).output)
    np.testing.assert_array_equal(simulate(back, x).output, simulate(ticket, x).output)


def test_what_netx_cannot_express_is_refused_or_reported(tmp_path: Path) -> None:
    with pytest.raises(SltUnsupportedError, match="subtract") as info:
        export_netx(mlp(reset="subtract"), tmp_path / "a.h5")
    assert "--allow-approximate" in str(info.value) and "allow_approximate=" not in str(info.value)
    report = export_netx(mlp(reset="subtract"), tmp_path / "a.h5", allow_approximate=True)
    assert not report["same_as_lava_target"] and report["spikes_equal_reference"] is False
    assert "'subtract' reset" in report["approximations"][0]
    assert not os.path.exists(tmp_path / "b.h5")


def test_biases_are_exact_with_netxs_reset_and_written_as_bias_mant(tmp_path: Path) -> None:
    for make, name in ((biased_mlp, "m.h5"), (biased_conv, "c.h5"), (lambda: mlp(bias=np.float32(0.25)), "b.h5")):
        ticket = make()
        report = export_netx(ticket, tmp_path / name)
        assert report["same_as_lava_target"] and report["approximations"] == []
        assert report["lava_dl_options"]["reset_interval"] == ticket.timesteps
        assert report["lava_dl_options"]["reset_offset"] == 1
        assert f"reset_interval={ticket.timesteps}, reset_offset=1" in report["load"]
        fixed = to_fixed(ticket, input_frac_bits=report["input_frac_bits"])
        with h5py.File(tmp_path / name, "r") as f:
            blocks = [f[f"layer/{i}"] for i in range(1, len(f["layer"])) if f[f"layer/{i}/type"][0] != b"flatten"]
            for layer, g in zip(fixed.layers, blocks, strict=True):
                if not np.any(layer.bias_mant):
                    assert "bias" not in g
                elif g["type"][0] == b"conv":  # one bias_mant per channel, as netx broadcasts it
                    np.testing.assert_array_equal(g["bias"][()], layer.bias_mant.reshape(g["bias"].shape[0], -1)[:, 0])
                else:
                    np.testing.assert_array_equal(g["bias"][()], layer.bias_mant)
    assert any(np.any(layer.bias_mant) for layer in to_fixed(biased_mlp()).layers[1:])  # deep layers have biases


def test_bias_forms_netx_cannot_state_are_refused_with_the_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rec = Ticket(
        (Input("in", shape=(4,)), Linear("fc", binary(rng, (5, 4), 0.5), bias=np.full(5, 0.25, np.float32)),
         Linear("rec", binary(rng, (5, 5), 0.25)), Add("add"), LIF("l1", (5,), threshold=0.5), Output("out")),
        (Edge("in", "fc"), Edge("fc", "add"), Edge("rec", "add"), Edge("add", "l1"), Edge("l1", "rec", True),
         Edge("l1", "out")), 4, Encoding("spikes"))
    for approximate in (False, True):
        with pytest.raises(SltUnsupportedError, match="node 'l1' is recurrent and a bias") as info:
            export_netx(rec, tmp_path / "r.h5", allow_approximate=approximate)
        assert "\n" not in str(info.value)
    conv = Conv2d("conv", binary(rng, (2, 1, 3, 3), 0.5, 0.7), padding=(1, 1))
    varying = sequential((1, 3, 3), [conv, LIF("l1", (2, 3, 3), threshold=0.5,
                                               bias=np.arange(18, dtype=np.float32).reshape(2, 3, 3) / 8)],
                         3, Encoding("spikes"))
    with pytest.raises(SltUnsupportedError, match="varies within a channel"):
        export_netx(varying, tmp_path / "v.h5")
    assert not (tmp_path / "r.h5").exists() and not (tmp_path / "v.h5").exists()


def test_the_netx_handler_table_is_the_plans_with_netxs_refusals(tmp_path: Path) -> None:
    from slt_deploy.exporters.netx import HANDLERS

    from slt_deploy import registry
    from slt_deploy.dispatch import Refusal
    from slt_deploy.fixed_point.plan import HANDLERS as PLAN
    from slt_deploy.ir.nodes import NODE_KINDS

    assert registry.exporter("netx").handler_table() is HANDLERS
    kinds = {kind for kind, cls in NODE_KINDS.items() if cls.__module__.startswith("slt_deploy.")}
    assert kinds <= set(HANDLERS)
    for kind in kinds - {"li"}:
        assert HANDLERS[kind] is PLAN[kind], kind
    assert isinstance(HANDLERS["li"], Refusal) and "LI readout" in HANDLERS["li"].reason
    rng = np.random.default_rng(0)
    readout = sequential((12,), [Linear("fc1", binary(rng, (10, 12), 0.5)), LIF("l1", (10,), threshold=0.5),
                                 Linear("fc2", binary(rng, (4, 10), 0.25)), LI("ro", (4,), beta=0.5)],
                         4, Encoding("spikes"))
    for approximate in (False, True):  # a refusal, not an approximation
        with pytest.raises(SltUnsupportedError, match="node 'ro' \\(li\\): netx's CUBA layers spike") as info:
            export_netx(readout, tmp_path / "ro.h5", allow_approximate=approximate)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "ro.h5").exists()


# ------------------------------------------------------------------ hostile files
def _corrupt(path: Path, edit) -> None:
    with h5py.File(path, "a") as f:
        edit(f)


def _replace(f, key, value) -> None:
    if key in f:
        del f[key]
    f.create_dataset(key, data=value)


@pytest.mark.parametrize("edit, field", [
    (lambda f: f.__delitem__("layer/1/weight"), "layer/1/weight"),
    (lambda f: f.__delitem__("layer/2/neuron/vThMant"), "layer/2/neuron/vThMant"),
    (lambda f: f.__delitem__("layer/0/shape"), "layer/0/shape"),
    (lambda f: f.__delitem__("layer"), "layer"),
    (lambda f: _replace(f, "layer/1/weight", np.ones((3, 3))), "layer/1/weight"),
    (lambda f: _replace(f, "layer/1/weight", np.full((10, 12), np.nan)), "layer/1/weight"),
    (lambda f: _replace(f, "layer/1/weight", np.full((10, 12), 0.5)), "layer/1/weight"),
    (lambda f: _replace(f, "layer/2/neuron/vDecay", 5000), "layer/2/neuron/vDecay"),
    (lambda f: _replace(f, "layer/1/shape", np.array([0])), "layer/1/shape"),
    (lambda f: _replace(f, "layer/1/bias", np.ones(3)), "layer/1/bias"),
    (lambda f: _replace(f, "layer/1/neuron/type", np.array([b"SDNN"])), "layer/1/neuron/type"),
    (lambda f: _replace(f, "layer/2/type", np.array([b"pool"])), "layer/2/type"),
    (lambda f: _replace(f, "layer/1/neuron/iDecay", np.array([1.0, 2.0])), "layer/1/neuron/iDecay"),
])
def test_bad_fields_are_one_line_errors_naming_the_field(tmp_path: Path, edit, field: str) -> None:
    path = tmp_path / "n.h5"
    export_netx(mlp(), path)
    _corrupt(path, edit)
    with pytest.raises(SltFormatError) as info:
        import_netx(path)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_truncated_and_foreign_files_are_typed_errors(tmp_path: Path) -> None:
    path = tmp_path / "n.h5"
    export_netx(conv_net(), path)
    data = path.read_bytes()
    for cut in (0, 8, len(data) // 3, len(data) - 200):
        bad = tmp_path / f"cut{cut}.h5"
        bad.write_bytes(data[:cut])
        with pytest.raises(SltFormatError, match="netx file"):
            read_netx(bad)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(SltFormatError, match="not a readable HDF5"):
        read_netx(tmp_path / "text.h5")
    with pytest.raises(SltFormatError, match="does not exist"):
        read_netx(tmp_path / "missing.h5")


def test_a_dataset_claiming_more_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.h5"
    export_netx(mlp(), path)
    with h5py.File(path, "a") as f:
        del f["layer/1/weight"]
        f.create_dataset("layer/1/weight", shape=(1 << 16, 1 << 15), dtype="f8", compression="gzip", fillvalue=0)
    with pytest.raises(SltFormatError, match="layer/1/weight"):
        read_netx(path)


# ------------------------------------------------------------------ lava-dl's own loader
@pytest.fixture(scope="module")
def netx(request):
    """lava-dl 0.6.0's ``lava.lib.dl.netx.hdf5`` with slayer stubbed (see the module docstring)."""
    from slt_deploy.targets import lava as lava_target

    if not lava_target.lava_available():
        pytest.skip("lava-nc is not installed")
    lava = lava_target.import_lava()
    cache = Path(request.config.cache.mkdir("lava-dl-0.6.0"))
    wheels = sorted(cache.glob("lava_dl-0.6.0-*.whl"))
    if not wheels:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
                               LAVA_DL, "-d", str(cache)], capture_output=True, text=True, timeout=600)
        wheels = sorted(cache.glob("lava_dl-0.6.0-*.whl"))
        if proc.returncode or not wheels:
            pytest.skip(f"`pip download {LAVA_DL}` was refused: {(proc.stderr or proc.stdout).strip()[-300:]}")
    root = cache / "src"
    if not (root / "lava/lib/dl/netx/hdf5.py").exists():
        with zipfile.ZipFile(wheels[0]) as z:
            z.extractall(root, [n for n in z.namelist() if n.startswith("lava/lib/dl/netx/") and n.endswith(".py")])
    added = {}

    def module(name: str, path: Path | None = None) -> types.ModuleType:
        m = types.ModuleType(name)
        if path is not None:
            m.__path__ = [str(path)]
        added[name] = sys.modules.get(name)
        sys.modules[name] = m
        return m

    module("lava.lib", root / "lava/lib")
    module("lava.lib.dl", root / "lava/lib/dl")
    module("lava.lib.dl.netx", root / "lava/lib/dl/netx")  # its __init__ would import torch-only modules
    module("lava.lib.dl.slayer", root / "missing")
    module("lava.lib.dl.slayer.neuron", root / "missing")

    def neuron_params(*args, **kwargs):
        raise NotImplementedError("slayer is stubbed: resonate-and-fire layers are not used by slt")

    module("lava.lib.dl.slayer.neuron.rf").neuron_params = neuron_params
    from lava.lib.dl.netx import hdf5

    yield types.SimpleNamespace(hdf5=hdf5, lava=lava)
    for name in [n for n in sys.modules if n.startswith("lava.lib.dl.netx.")]:
        sys.modules.pop(name)
    for name, old in added.items():
        if old is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = old


def run_netx(netx, path: Path, x: np.ndarray, report: dict, options: dict | None = None) -> np.ndarray:
    """Run the netx Network on samples ``x`` (T·k, *in) back to back in fixed_pt; output (T·k, n) aligned like slt.

    ``options``: netx.hdf5.Network's keyword arguments (default: the report's ``lava_dl_options``).
    """
    lava = netx.lava
    net = netx.hdf5.Network(net_config=str(path), **(report["lava_dl_options"] if options is None else options))
    T, D = x.shape[0], report["delay_steps"]
    if report["input_message_bits"]:
        x = np.round(x * (1 << report["input_frac_bits"]))  # graded spikes
    if report["types"][0] == "conv":
        data = np.moveaxis(x.transpose(0, 3, 2, 1), 0, -1)  # (W, H, C, T): netx's input order
    else:
        data = x.reshape(T, -1).T
    data = np.concatenate([data, np.zeros(data.shape[:-1] + (D,))], axis=-1).astype(np.int32)
    source = lava.Source(data=data)
    sink = lava.Sink(shape=net.out.shape, buffer=T + D)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        source.run(condition=lava.RunSteps(num_steps=T + D), run_cfg=lava.Loihi2SimCfg(select_tag="fixed_pt"))
        out = np.asarray(sink.data.get())
    finally:
        source.stop()
    out = out.reshape(-1, T + D)[:, D:D + T].T
    if report["types"][-1] == "conv":
        out = out.reshape(T, *net.out.shape).transpose(0, 3, 2, 1).reshape(T, -1)
    return out


@pytest.mark.lava
@pytest.mark.parametrize("make", [mlp, conv_net, direct_mlp, biased_mlp, biased_conv])
def test_lava_dl_netx_loads_the_file_and_fires_like_the_slt_lava_target(tmp_path: Path, netx, make) -> None:
    from slt_deploy.targets import lava as lava_target

    ticket = make()
    path = tmp_path / "net.h5"
    report = export_netx(ticket, path)
    if ticket.encoding.kind == "direct":
        x = (np.random.default_rng(11).integers(-64, 384, (1, *ticket.input_shape)) / 256).astype(np.float32)
        per_step = np.repeat(x[None], ticket.timesteps, axis=0)
    else:
        x = spikes(ticket, 1, seed=11)
        per_step = x
    ours = lava_target.run(ticket, x, **report["lava_target_options"]).output.reshape(ticket.timesteps, -1)
    theirs = run_netx(netx, path, per_step[:, 0], report)
    assert ours.sum() > 0
    np.testing.assert_array_equal(theirs, ours)
    np.testing.assert_array_equal(theirs, simulate(ticket, x).output.reshape(ticket.timesteps, -1))


def direct_per_step(ticket, seed: int, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Direct input on the 1/256 grid (exact as graded spikes) and the same repeated per step."""
    x = (np.random.default_rng(seed).integers(-64, 384, (batch, *ticket.input_shape)) / 256).astype(np.float32)
    return x, np.repeat(x[None], ticket.timesteps, axis=0)


@pytest.mark.lava
def test_netx_streams_biased_samples_back_to_back_and_needs_its_reset(tmp_path: Path, netx) -> None:
    """Three samples fed one after another (every T steps) give each sample's own spikes: the reset at each
    layer's first step makes the bias exact; loaded without it, the deep layers integrate their bias early."""
    ticket = biased_mlp()
    path = tmp_path / "net.h5"
    report = export_netx(ticket, path)
    x, _ = direct_per_step(ticket, 21, batch=3)
    want = simulate(ticket, x).output  # (T, 3, n)
    T = ticket.timesteps
    stream = np.concatenate([np.repeat(x[b][None], T, axis=0) for b in range(3)])
    got = run_netx(netx, path, stream, report).reshape(3, T, -1).transpose(1, 0, 2)
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(got, want.reshape(T, 3, -1))
    plain = {k: v for k, v in report["lava_dl_options"].items() if not k.startswith("reset")}
    early = run_netx(netx, path, stream[:T], report, options=plain)
    assert not np.array_equal(early, want[:, 0].reshape(T, -1))
