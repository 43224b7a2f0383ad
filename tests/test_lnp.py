"""Heterogeneous recurrent SNNs and Lyapunov Noise Pruning (slt_deploy.lnp, slt search --method lnp)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("networkx")
pytest.importorskip("optuna")
pytest.importorskip("scipy")

import slt_deploy as slt  # noqa: E402
from slt_deploy.lnp import hrsnn, prune, tasks  # noqa: E402
from slt_deploy.lnp.lyapunov import henon_jacobians, spectrum  # noqa: E402
from slt_deploy.lnp.run import LnpConfig, checkpoint_dir, run_lnp  # noqa: E402
from slt_deploy.registry import CPU  # noqa: E402


# ------------------------------------------------------------------ Lyapunov spectrum, known systems
def test_spectrum_of_a_linear_map_is_the_log_moduli_of_its_eigenvalues() -> None:
    rng = np.random.default_rng(0)
    p = rng.normal(size=(4, 4))
    a = p @ np.diag([1.5, 0.9, -0.5, 0.2]) @ np.linalg.inv(p)
    got = spectrum([a] * 400, warmup=50)
    np.testing.assert_allclose(got, np.log([1.5, 0.9, 0.5, 0.2]), atol=2e-3)


def test_spectrum_of_the_henon_map() -> None:
    """Hénon (a = 1.4, b = 0.3): λ1 ≈ 0.419, λ2 ≈ −1.623 (Sprott, Chaos and Time-Series Analysis), λ1 + λ2 = ln b."""
    got = spectrum(henon_jacobians(20000), warmup=100)
    assert got[0] == pytest.approx(0.419, abs=0.005)
    assert got[1] == pytest.approx(-1.623, abs=0.005)
    assert got.sum() == pytest.approx(np.log(0.3), abs=1e-6)


def test_leading_exponents_only() -> None:
    a = np.diag([2.0, 1.0, 0.5])
    np.testing.assert_allclose(spectrum([a] * 50, k=2), np.log([2.0, 1.0]), atol=1e-12)


# ------------------------------------------------------------------ the network
def test_hrsnn_is_heterogeneous_and_deterministic() -> None:
    a, b = hrsnn.build(60, 8, seed=3), hrsnn.build(60, 8, seed=3)
    assert np.array_equal(a.w_rec, b.w_rec) and np.array_equal(a.beta, b.beta)
    assert len(np.unique(a.beta)) == 60 and a.beta.dtype == np.float32
    tau = -1.0 / np.log(a.beta.astype(np.float64))
    assert tau.min() >= 2.0 - 1e-4 and tau.max() <= 40.0 + 1e-3
    assert not np.array_equal(a.w_rec, hrsnn.build(60, 8, seed=4).w_rec)


def test_chrsnn_clusters_are_small_world_blocks() -> None:
    net = hrsnn.build(80, 8, seed=0, clusters=4)
    m = net.w_rec != 0
    inside = sum(m[i * 20:(i + 1) * 20, i * 20:(i + 1) * 20].sum() for i in range(4))
    assert inside > 0.6 * m.sum()


def test_hrsnn_ticket_runs_the_same_on_every_float32_target() -> None:
    net = hrsnn.build(30, 8, seed=1)
    x_tr, _, _, _ = tasks.digits()
    t = tasks.ticket(net, np.ones((10, 30), np.float32) / 8, np.zeros(10), 1.0, 8)
    ref = slt.run(t, x_tr[:, :16], record=True)
    from slt_deploy.registry import exact_targets

    for target in exact_targets():
        got = slt.run(t, x_tr[:, :16], target=target, record=True)
        np.testing.assert_array_equal(got.output, ref.output, err_msg=target)


# ------------------------------------------------------------------ LNP
@pytest.fixture(scope="module")
def dense() -> hrsnn.HRSNN:
    return hrsnn.build(80, 8, seed=0)


def test_noise_sampling_keeps_the_asked_fraction_and_reweights(dense: hrsnn.HRSNN) -> None:
    out = prune.noise_sample(dense, 0, keep=0.5)
    assert out.synapses / dense.synapses == pytest.approx(0.5, abs=0.05)
    kept = out.w_rec != 0
    assert not np.any(kept & (dense.w_rec == 0))
    ratio = out.w_rec[kept] / dense.w_rec[kept]
    assert np.all(ratio >= 1 - 1e-6) and np.all(ratio <= 4 + 1e-5)  # w / p, p <= 1, capped at 4


def test_neuron_removal_drops_the_lowest_betweenness(dense: hrsnn.HRSNN) -> None:
    bc = prune.betweenness(dense, 0)
    out, keep = prune.remove_central_least(dense, 0, remove=0.25)
    assert out.n == 60 and keep.sum() == 60
    assert bc[~keep].max() <= bc[keep].min()


def test_delocalisation_only_adds_a_capped_number_of_edges(dense: hrsnn.HRSNN) -> None:
    sparse = prune.noise_sample(dense, 0, keep=0.3)
    out = prune.delocalise(sparse, 0, add_cap=0.1)
    added = (out.w_rec != 0) & (sparse.w_rec == 0)
    assert 0 < added.sum() <= int(0.1 * sparse.synapses)
    assert np.array_equal(out.w_rec[sparse.w_rec != 0], sparse.w_rec[sparse.w_rec != 0])


def test_lnp_is_deterministic_and_tau_search_is_bounded(dense: hrsnn.HRSNN) -> None:
    a, log = prune.lnp(dense, 5, trials=4)
    b, _ = prune.lnp(dense, 5, trials=4)
    assert np.array_equal(a.w_rec, b.w_rec) and np.array_equal(a.beta, b.beta)
    search = log["tau_search"]
    assert 1.5 <= search["shape"] <= 6 and 0.5 <= search["scale"] <= 4
    assert a.n == 40 and a.synapses < dense.synapses


# ------------------------------------------------------------------ tasks
def test_series_are_standardised_one_step_ahead() -> None:
    for s in (tasks.lorenz(600), tasks.mackey_glass(600)):
        assert s.x.shape == s.y.shape == (600,)
        np.testing.assert_array_equal(s.x[1:], s.y[:-1])
        assert abs(float(s.x.mean())) < 0.1 and float(s.x.std()) == pytest.approx(1.0, abs=0.1)


# ------------------------------------------------------------------ slt search --method lnp
def test_search_lnp_writes_a_ticket_and_resumes_identically(tmp_path) -> None:
    cfg = LnpConfig(seed=1, neurons=40, trials=3)
    out = tmp_path / "h.slt"
    log = run_lnp(cfg, out, keep_checkpoints=True)
    assert [s["stage"] for s in log["stages"]] == ["build", "noise", "neurons", "delocalise", "taus"]
    r = log["result"]
    assert r["neurons"] == 20 and 0 < r["synapse_sparsity"] < 1 and 0.1 < r["digits_accuracy"] <= 1
    ticket = slt.load(out)
    first = out.read_bytes()
    x = tasks.digits()[2][:, :8]
    np.testing.assert_array_equal(slt.run(ticket, x).output, slt.run(ticket, x, target=CPU.name).output)
    folder = checkpoint_dir(out)
    for late in sorted(folder.glob("lnp-*.npz"))[2:]:
        late.unlink()  # as if interrupted after LNP step 1
    resumed = run_lnp(cfg, out, resume=True)
    assert resumed["result"] == r and out.read_bytes() == first
    assert json.loads(out.with_suffix(".json").read_text())["result"] == r


def test_a_new_search_removes_only_its_own_stage_files(tmp_path) -> None:
    out = tmp_path / "h.slt"
    folder = checkpoint_dir(out)
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's")
    (folder / "lnp-00-build.npz").write_bytes(b"a stale stage file")
    run_lnp(LnpConfig(seed=1, neurons=40, trials=2), out)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "the user's"
    run_lnp(LnpConfig(seed=1, neurons=40, trials=2), out, keep_checkpoints=True)
    run_lnp(LnpConfig(seed=1, neurons=40, trials=2), out)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    (folder / "notes.txt").unlink()
    run_lnp(LnpConfig(seed=1, neurons=40, trials=2), out, keep_checkpoints=True)
    run_lnp(LnpConfig(seed=1, neurons=40, trials=2), out)
    assert not folder.exists()


def test_resume_with_other_options_is_refused_naming_the_flag(tmp_path) -> None:
    out = tmp_path / "h.slt"
    run_lnp(LnpConfig(seed=1, neurons=40, trials=2), out, keep_checkpoints=True)
    with pytest.raises(slt.SltError, match="--seed"):
        run_lnp(LnpConfig(seed=2, neurons=40, trials=2), out, resume=True)


def test_cli_refuses_data_for_lnp_naming_the_flag(tmp_path) -> None:
    from typer.testing import CliRunner

    from slt_deploy.cli import app

    res = CliRunner().invoke(app, ["search", "--method", "lnp", "--data", "x.npz", "--out", str(tmp_path / "a.slt")])
    assert res.exit_code == 2 and "--data" in res.output


# ------------------------------------------------------------------ the committed example
EXAMPLE = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "hrsnn" / "hrsnn-lnp-seed0.slt"


def test_example_hrsnn_ticket_reproduces_its_log_on_every_float32_target() -> None:
    from slt_deploy.ir import RLIF
    from slt_deploy.registry import exact_targets

    log = json.loads(EXAMPLE.with_suffix(".json").read_text())
    ticket = slt.load(EXAMPLE)
    (rlif,) = [n for n in ticket.nodes if isinstance(n, RLIF)]
    assert rlif.shape == (log["result"]["neurons"],)
    assert int(ticket.node("w_rec").weights.mask.sum()) == log["result"]["synapses"]
    _, _, x, y = tasks.digits(log["config"]["split_seed"])
    ref = slt.run(ticket, x)
    assert float(np.mean(ref.output[-1].argmax(axis=1) == y)) == log["result"]["digits_accuracy"]
    for target in exact_targets():
        got = slt.run(ticket, x[:, :64], target=target)
        np.testing.assert_array_equal(got.output, ref.output[:, :64], err_msg=target)
