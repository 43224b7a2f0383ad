"""The ANN baseline: equal to NeuroBench 2.3's SynapticOperations (the real package) on ReLU MLPs
and CNNs, equal to a brute-force count, the estimate worked by hand, untrusted weight files
refused with one line, and the ANN twin of `slt search --ann-twin`.

Oracles: NeuroBench's own Benchmark + SynapticOperations on the same torch module and inputs;
a Python loop over every (weight, input value) pair of every layer call; hand-worked counts.
"""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from slt_deploy import save  # noqa: E402
from slt_deploy.energy import energy  # noqa: E402
from slt_deploy.energy.ann import SltAnnError, estimate_ann, load_ann_file, measure_ann, twin_path  # noqa: E402
from slt_deploy.errors import SltError  # noqa: E402
from slt_deploy.ir import (  # noqa: E402
    LIF,
    Add,
    AvgPool2d,
    Conv2d,
    Edge,
    Flatten,
    Input,
    Linear,
    MaxPool2d,
    Output,
    Ticket,
    binarize,
    sequential,
)

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- networks
def _w(rng: np.random.Generator, shape: tuple[int, ...]):
    return binarize(rng.normal(size=shape).astype(np.float32), rng.random(shape) < 0.3)


def mlp_pair(seed: int = 0, prune: bool = False) -> tuple[Ticket, nn.Module]:
    """A ticket 20-32-16-5 and a ReLU MLP of the same architecture (torch default init, biases)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    ann = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5))
    if prune:  # a pruned ANN: zero weights are not operations for NeuroBench either
        with torch.no_grad():
            ann[0].weight.mul_(torch.from_numpy(rng.random((32, 20)) < 0.6).float())
    ticket = sequential((20,), [Linear("0", _w(rng, (32, 20))), LIF("1", shape=(32,)),
                                Linear("2", _w(rng, (16, 32))), LIF("3", shape=(16,)),
                                Linear("4", _w(rng, (5, 16))), LIF("5", shape=(5,))], 4)
    return ticket, ann


def conv_pair(seed: int = 0, pool: type = MaxPool2d) -> tuple[Ticket, nn.Module]:
    """A conv ticket (padding, stride 2, groups 2, dilation) and its ReLU CNN."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tpool = nn.MaxPool2d(2) if pool is MaxPool2d else nn.AvgPool2d(2)
    ann = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), tpool,
                        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), nn.ReLU(),
                        nn.Conv2d(8, 6, 2, dilation=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 4))
    ticket = sequential((3, 12, 12), [
        Conv2d("0", _w(rng, (8, 3, 3, 3)), padding=1), LIF("1", shape=(8, 12, 12)), pool("2"),
        Conv2d("3", _w(rng, (8, 4, 3, 3)), stride=2, padding=1, groups=2), LIF("4", shape=(8, 3, 3)),
        Conv2d("5", _w(rng, (6, 8, 2, 2)), dilation=2, padding=1), LIF("6", shape=(6, 3, 3)), Flatten("7"),
        Linear("8", _w(rng, (4, 54))), LIF("9", shape=(4,))], 3)
    return ticket, ann


def standardized(rng: np.random.Generator, n: int, features: int) -> np.ndarray:
    """Standardized float32 features (z-scores), as users feed an MLP."""
    raw = rng.normal(3.0, 2.0, size=(n, features)) * rng.random(features) + rng.random(features)
    return ((raw - raw.mean(0)) / raw.std(0)).astype(np.float32)


def images(rng: np.random.Generator, n: int) -> np.ndarray:
    """8-bit images scaled by 1/255 with black background (many exact zeros)."""
    img = rng.integers(0, 256, size=(n, 3, 12, 12)) * (rng.random((n, 3, 12, 12)) < 0.6)
    return (img / 255.0).astype(np.float32)


# ----------------------------------------------------------------------------- NeuroBench
def neurobench_synops(model: nn.Module, x: np.ndarray, batch_size: int) -> dict[str, float]:
    nb = pytest.importorskip("neurobench", reason="neurobench not installed (tools/bootstrap.sh installs it)")
    assert nb.__version__.startswith("2.3"), nb.__version__
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel
    from torch.utils.data import DataLoader, TensorDataset
    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing RLock, which fixes this process's start method; Lava's
    # import later sets it to 'fork' and fails if it is already fixed (tests share worker processes)
    tqdm.set_lock(threading.RLock())

    data = TensorDataset(torch.from_numpy(x), torch.zeros(len(x)))
    bench = Benchmark(TorchModel(model), DataLoader(data, batch_size=batch_size), [], [], [[], [SynapticOperations]])
    return bench.run(quiet=True)["SynapticOperations"]


@pytest.mark.parametrize("prune", [False, True])
@pytest.mark.parametrize("batch", [1, 32])
def test_mlp_ann_equals_neurobench(prune: bool, batch: int) -> None:
    ticket, ann = mlp_pair(1, prune)
    x = standardized(np.random.default_rng(2), 70, 20)
    expect = neurobench_synops(ann, x, batch)
    counts = measure_ann(ticket, ann, x)
    assert counts.effective_mac == expect["Effective_MACs"]
    assert counts.effective_ac == expect["Effective_ACs"] == 0
    assert counts.dense == expect["Dense"]
    r = energy(ticket, x, ann=ann)
    assert r.variant("ann").mac == expect["Effective_MACs"]
    assert r.variant("ann-dense").mac == expect["Dense"]
    assert r.to_dict()["ann"]["effective_mac"] == expect["Effective_MACs"]


@pytest.mark.parametrize("pool", [MaxPool2d, AvgPool2d])
def test_conv_ann_equals_neurobench(pool: type) -> None:
    ticket, ann = conv_pair(3, pool)
    x = images(np.random.default_rng(4), 40)
    expect = neurobench_synops(ann, x, 16)
    r = energy(ticket, x, ann=ann)
    assert r.variant("ann").mac == expect["Effective_MACs"]
    assert r.variant("ann").ac == expect["Effective_ACs"] == 0
    assert r.variant("ann-dense").mac == expect["Dense"]  # padding positions are never operations


def test_binary_input_ann_counts_acs_like_neurobench() -> None:
    # binarized images: every first-layer call has inputs in {0, 1}: accumulates, as NeuroBench says
    ticket, ann = conv_pair(5)
    x = (images(np.random.default_rng(6), 24) > 0.5).astype(np.float32)
    expect = neurobench_synops(ann, x, 8)
    counts = measure_ann(ticket, ann, x)
    assert (counts.effective_ac, counts.effective_mac) == (expect["Effective_ACs"], expect["Effective_MACs"])
    assert counts.effective_ac > 0


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "state_dict"])
def test_weight_files_run_the_same_ann(tmp_path: Path, fmt: str) -> None:
    ticket, ann = conv_pair(7)
    x = images(np.random.default_rng(8), 30)
    expect = neurobench_synops(ann, x, 30)
    if fmt == "pt":
        source: object = tmp_path / "ann.pt"
        torch.save(ann.state_dict(), source)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        source = tmp_path / "ann.safetensors"
        save_file({k: v.contiguous() for k, v in ann.state_dict().items()}, str(source))
    else:
        source = ann.state_dict()
    counts = measure_ann(ticket, source, x)  # the ticket's graph run as a ReLU ANN with these weights
    assert counts.effective_mac == expect["Effective_MACs"]
    assert counts.measured and 0 < counts.sparsity < 1


# ----------------------------------------------------------------------------- brute force
def _hooked_inputs(model: nn.Module, x: np.ndarray) -> list[tuple[nn.Module, np.ndarray]]:
    seen: list[tuple[nn.Module, np.ndarray]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.append((mod, inp[0].numpy().copy())))
             for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    return seen


def brute_force_macs(model: nn.Module, x: np.ndarray) -> float:
    """Effective MACs per sample by looping over every weight and input value of every layer call."""
    total = 0
    for mod, inp in _hooked_inputs(model, x):
        w = mod.weight.detach().numpy()
        for b in range(len(inp)):
            v = inp[b]
            if isinstance(mod, nn.Linear):
                total += sum(1 for o in range(w.shape[0]) for i in range(w.shape[1]) if w[o, i] != 0 and v[i] != 0)
                continue
            (sh, sw), (ph, pw), (dh, dw), g = mod.stride, mod.padding, mod.dilation, mod.groups
            c_out, c_in_g, kh, kw = w.shape
            _, H, W = v.shape
            h_out = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
            w_out = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            for o in range(c_out):
                grp = o // (c_out // g)
                for i in range(h_out):
                    for j in range(w_out):
                        for c in range(c_in_g):
                            for ki in range(kh):
                                for kj in range(kw):
                                    r, q = i * sh + ki * dh - ph, j * sw + kj * dw - pw
                                    if (0 <= r < H and 0 <= q < W and w[o, c, ki, kj] != 0
                                            and v[grp * c_in_g + c, r, q] != 0):
                                        total += 1
    return total / len(x)


def test_mlp_ann_equals_brute_force() -> None:
    ticket, ann = mlp_pair(9, prune=True)
    x = standardized(np.random.default_rng(10), 12, 20)
    assert measure_ann(ticket, ann, x).effective_mac == pytest.approx(brute_force_macs(ann, x), abs=0)


def test_conv_ann_equals_brute_force() -> None:
    ticket, ann = conv_pair(11)
    x = images(np.random.default_rng(12), 3)
    assert measure_ann(ticket, ann, x).effective_mac == pytest.approx(brute_force_macs(ann, x), abs=0)


# ----------------------------------------------------------------------------- estimate
def test_estimate_by_hand_on_digits() -> None:
    sklearn = pytest.importorskip("sklearn.datasets")
    x = (sklearn.load_digits().data[:50] / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    ticket = sequential((64,), [Linear("fc1", _w(rng, (128, 64))), LIF("l1", shape=(128,)),
                                Linear("fc2", _w(rng, (10, 128))), LIF("l2", shape=(10,))], 8)
    nnz = np.count_nonzero(x, axis=1)
    # first layer: every nonzero pixel reaches all 128 neurons; hidden: (1 - s) * 128 * 10
    for s in (0.5, 0.8):
        est = estimate_ann(ticket, x, s)
        assert est.effective_mac == pytest.approx(nnz.mean() * 128 + (1 - s) * 1280)
        assert not est.measured
    r = energy(ticket, x, ann_sparsity=0.8)
    assert "assumed = 0.80" in r.variant("ann").label and "measured" in r.variant("ann").label
    assert "assumed = 0.80" in r.assumption() and "Glorot" in r.assumption()
    assert r.variant("ann-dense").label == "ANN, dense upper bound"
    with pytest.raises(SltError, match="ann_sparsity"):
        energy(ticket, x, ann=nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)), ann_sparsity=0.5)


def test_measured_ann_replaces_the_assumption() -> None:
    ticket, ann = mlp_pair(13)
    x = standardized(np.random.default_rng(14), 40, 20)
    r = energy(ticket, x, ann=ann)
    assert r.ann.measured and "measured" in r.assumption()
    hidden_inputs = _hooked_inputs(ann, x)[1:]
    zero = sum(int((v == 0).sum()) for _, v in hidden_inputs) / sum(v.size for _, v in hidden_inputs)
    assert r.ann.sparsity == pytest.approx(zero)


# ----------------------------------------------------------------------------- untrusted files
class _Evil:
    def __reduce__(self):  # would create a file if unpickled
        return (Path.touch, (Path(_Evil.target),))


def test_pickled_objects_are_refused_and_never_run(tmp_path: Path) -> None:
    ticket, ann = mlp_pair(0)
    x = standardized(np.random.default_rng(0), 5, 20)
    _Evil.target = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": _Evil()}, evil)
    with pytest.raises(SltAnnError, match="not a weights-only file") as info:
        measure_ann(ticket, evil, x)
    assert not (tmp_path / "pwned").exists() and "\n" not in str(info.value)
    whole = tmp_path / "model.pt"
    torch.save(ann, whole)  # a whole pickled module: refused too
    with pytest.raises(SltAnnError, match="state_dict"):
        measure_ann(ticket, whole, x)


@pytest.mark.parametrize("case,match", [
    ("missing", "no such ANN file"),
    ("garbage.pt", "not a readable PyTorch state dict"),
    ("garbage.safetensors", "not a readable safetensors file"),
    ("truncated.safetensors", "not a readable safetensors file"),
    ("weird.txt", "unknown ANN file type"),
    ("tensor.pt", "not a state dict"),
    ("shapes.pt", "has shape"),
    ("count.pt", "not the same architecture"),
    ("batchnorm.pt", "BatchNorm"),
    ("nan.pt", "NaN or inf"),
    ("dir", "is a directory"),
])
def test_bad_ann_files_are_one_line_errors(tmp_path: Path, case: str, match: str) -> None:
    from safetensors.torch import save_file

    ticket, ann = mlp_pair(0)
    x = standardized(np.random.default_rng(0), 5, 20)
    sd = {k: v.clone() for k, v in ann.state_dict().items()}
    path = tmp_path / case
    if case.startswith("garbage"):
        path.write_bytes(b"\x00not a model" * 10)
    elif case == "truncated.safetensors":
        save_file(sd, str(path))
        path.write_bytes(path.read_bytes()[:100])
    elif case == "weird.txt":
        path.write_text("hello")
    elif case == "tensor.pt":
        torch.save(torch.zeros(3), path)
    elif case == "shapes.pt":
        sd["2.weight"] = torch.zeros(16, 31)
        torch.save(sd, path)
    elif case == "count.pt":
        del sd["4.weight"]
        torch.save(sd, path)
    elif case == "batchnorm.pt":
        sd = {f"net.{k}": v for k, v in sd.items()} | {"net.1.running_mean": torch.zeros(32),
                                                      "net.1.running_var": torch.ones(32)}
        torch.save(sd, path)
    elif case == "nan.pt":
        sd["0.weight"][0, 0] = float("nan")
        torch.save(sd, path)
    elif case == "dir":
        path.mkdir()
    with pytest.raises(SltAnnError, match=match) as info:
        measure_ann(ticket, path, x)
    assert "\n" not in str(info.value)


def test_architecture_mismatches() -> None:
    ticket, _ = mlp_pair(0)
    x = standardized(np.random.default_rng(0), 5, 20)
    with pytest.raises(SltAnnError, match="not the same architecture"):
        measure_ann(ticket, nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)), x)
    with pytest.raises(SltAnnError, match="does not match"):
        measure_ann(ticket, nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 17), nn.Linear(17, 5)), x)
    conv_ticket, conv = conv_pair(0)
    conv[3].stride = (1, 1)
    with pytest.raises(SltAnnError, match="stride"):
        measure_ann(conv_ticket, conv, images(np.random.default_rng(0), 2))
    rng = np.random.default_rng(0)
    recurrent = Ticket([Input("input", shape=(4,)), Linear("a", _w(rng, (4, 4))), Add("add"), LIF("l", shape=(4,)),
                        Linear("r", _w(rng, (4, 4))), Output("output")],
                       [Edge("input", "a"), Edge("a", "add"), Edge("r", "add"), Edge("add", "l"),
                        Edge("l", "r", recurrent=True), Edge("l", "output")], 2)
    with pytest.raises(SltAnnError, match="recurrent edge l -> r"):
        measure_ann(recurrent, nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), np.ones((2, 4), np.float32))
    # the estimate needs no ANN: first layer 4 x 4 on analog input, the recurrent layer (1 - 0.5) * 16
    assert energy(recurrent, np.full((2, 4), 0.5)).variant("ann").mac == 16 + 8
    with pytest.raises(SltAnnError, match="ANN input has shape"):
        measure_ann(ticket, mlp_pair(0)[1], x, given_input=np.zeros((4, 20)))


def test_cli_ann_flag_and_errors(tmp_path: Path) -> None:
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from slt_deploy.cli import user_errors
    from slt_deploy.energy.command import energy as energy_command

    app = typer.Typer()
    app.command("energy")(user_errors(energy_command))
    app.command("noop")(lambda: None)
    ticket, ann = mlp_pair(0)
    x = standardized(np.random.default_rng(0), 9, 20)
    save(ticket, tmp_path / "t.slt")
    np.save(tmp_path / "x.npy", x)
    torch.save(ann.state_dict(), tmp_path / "ann.pt")
    runner = CliRunner()
    base = ["energy", str(tmp_path / "t.slt"), "--input", str(tmp_path / "x.npy")]
    res = runner.invoke(app, [*base, "--ann", str(tmp_path / "ann.pt"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["ann"]["measured"] and d["ann"]["effective_mac"] == measure_ann(ticket, ann, x).effective_mac
    torch.save(ann, tmp_path / "whole.pt")
    for args, needle in (([*base, "--ann", str(tmp_path / "whole.pt")], "weights-only"),
                         ([*base, "--ann", str(tmp_path / "ann.pt"), "--ann-sparsity", "0.3"], "--ann-sparsity"),
                         ([*base, "--ann-sparsity", "1.5"], "--ann-sparsity"),
                         ([*base, "--batch-size", "0"], "--batch-size")):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and needle in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- the ANN twin
def _example(name: str) -> tuple[Ticket, dict]:
    from slt_deploy import load

    return load(ROOT / "examples" / f"{name}.slt"), json.loads((ROOT / "examples" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["digits-mlp-imp-binary", "digits-conv-imp-binary"])
def test_ann_twin_trains_and_is_counted(tmp_path: Path, name: str) -> None:
    pytest.importorskip("sklearn")
    from slt_deploy.demo import load_digits_split
    from slt_deploy.search import SearchConfig
    from slt_deploy.search.ann_twin import build_relu_model, folded_state, train_ann_twin

    ticket, log = _example(name)
    config = SearchConfig.from_dict(log["config"] | {"epochs": 1})
    info = train_ann_twin(config, ticket, tmp_path / f"{name}.slt")
    path = Path(info["path"])
    assert path == twin_path(tmp_path / f"{name}.slt") and path.name == f"{name}.ann.safetensors"
    tensors, meta = load_ann_file(path)
    assert meta["schema"] == "slt-ann/1" and meta["arch"] == config.arch and 0.1 < info["accuracy"] <= 1
    assert sorted(k.split(".")[0] for k in tensors if k.endswith("weight")) == sorted(
        n.name for n in ticket.synapse_layers())
    _, _, x, _ = load_digits_split(0)
    x = x[:60].reshape((-1, *ticket.input_shape))
    r = energy(ticket, x, ann=path)
    assert r.ann.measured and r.variant("ann").mac > 0
    # BatchNorm folding keeps the network's function (eval mode), so the counted ANN is the trained one
    model = build_relu_model(config.arch, tuple(ticket.input_shape), 10, config.hidden, tuple(config.channels), 0)
    if config.arch == "conv":
        with torch.no_grad():
            for bn in (model[1], model[5]):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
    model.eval()
    folded = build_relu_model(config.arch, tuple(ticket.input_shape), 10, config.hidden, tuple(config.channels), 0)
    if config.arch == "conv":
        folded[1], folded[5] = nn.Identity(), nn.Identity()
    folded.load_state_dict({k: torch.from_numpy(v) for k, v in folded_state(model).items()})
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(folded.eval()(xt).numpy(), model(xt).numpy(), rtol=1e-4, atol=1e-5)


def test_committed_demo_twin_matches_the_demo_ticket() -> None:
    from slt_deploy.demo import EXAMPLE_TICKET

    slt_path = ROOT / "examples" / EXAMPLE_TICKET
    tensors, meta = load_ann_file(twin_path(slt_path))
    assert meta["schema"] == "slt-ann/1" and float(meta["accuracy"]) > 0.9
    ticket, _ = _example(slt_path.stem)
    for n in ticket.synapse_layers():
        assert tensors[f"{n.name}.weight"].shape == n.weights.mask.shape


def test_search_cli_ann_twin(tmp_path: Path) -> None:
    pytest.importorskip("snntorch")
    pytest.importorskip("sklearn")
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    out = tmp_path / "t.slt"
    res = CliRunner().invoke(app, ["search", "--method", "imp", "--rounds", "1", "--epochs", "1", "--hidden", "16",
                                   "--out", str(out), "--ann-twin", "--json"])
    assert res.exit_code == 0, res.output
    log = json.loads(res.stdout)
    assert Path(log["ann_twin"]["path"]) == twin_path(out) and twin_path(out).is_file()
    _, meta = load_ann_file(twin_path(out))
    assert json.loads(meta["config"])["hidden"] == 16


def test_pickle_module_is_not_imported_by_loader_for_safetensors(tmp_path: Path) -> None:
    # a .safetensors file is parsed by safetensors only: a pickle inside is just bytes, never loaded
    path = tmp_path / "x.safetensors"
    path.write_bytes(pickle.dumps({"0.weight": 1}))
    with pytest.raises(SltAnnError, match="safetensors"):
        load_ann_file(path)
