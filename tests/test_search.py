"""Ticket search (slt_deploy.search): the rules on hand-made numbers, tiny end-to-end searches
against independent recomputations, binary exactness against snnTorch, resume, bad input.

Every search here trains a 64-32-10 network on a 320-sample slice of digits for one or two
epochs, so the file stays well under a minute and a half on two loaded cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import slt_deploy as slt
from slt_deploy.errors import SltError, SltInputError
from slt_deploy.search import (
    SearchConfig,
    SltSearchError,
    early_bird_converged,
    from_arrays,
    global_magnitude_keep,
    ladder,
    ladder_keep_counts,
    load_dataset,
    mask_distance,
    max_pairwise_distance,
    normalised_kl,
    pick_early_timestep,
)

TORCH_NEEDED = "needs torch + snnTorch"


# ============================================================ rules (numpy only)
def test_ladder_matches_the_papers_table() -> None:
    table = [25.0, 43.8, 57.8, 68.4, 76.3, 82.2, 86.7, 90.0, 92.5, 94.4, 95.8, 96.8, 97.6, 98.2]
    assert [round(100 * ladder(r), 1) for r in range(1, 15)] == table


@pytest.mark.parametrize("total", [1, 7, 1000, 9472, 123457])
def test_ladder_keep_counts_stay_within_half_a_weight(total: int) -> None:
    keeps = ladder_keep_counts(total, 14, 0.25)
    assert keeps[0] == total
    assert all(a >= b for a, b in zip(keeps, keeps[1:], strict=False))
    for r, keep in enumerate(keeps):
        assert abs((1 - keep / total) - ladder(r)) <= 0.5 / total + 1e-12


def test_early_time_rule_on_hand_made_kl() -> None:
    # T = 5: KL for T' = 1..4, normalised by the largest (4.0) -> 1, .5, .25, .125
    assert normalised_kl([4.0, 2.0, 1.0, 0.5]) == [1.0, 0.5, 0.25, 0.125]
    assert pick_early_timestep([4.0, 2.0, 1.0, 0.5]) == 2
    assert pick_early_timestep([4.0, 2.0, 1.0, 0.5], threshold=0.3) == 3
    # strictly below: 0.6 itself does not qualify
    assert pick_early_timestep([1.0, 0.6, 0.3]) == 3
    # the largest need not come first
    assert pick_early_timestep([0.5, 2.0, 1.0, 0.1]) == 1
    # nothing below the threshold: search at the full T
    assert pick_early_timestep([1.0, 0.9, 0.7]) == 4
    # all zero (outputs identical at every T'): the smallest T'
    assert pick_early_timestep([0.0, 0.0, 0.0]) == 1
    # T = 1: there is no smaller T'
    assert pick_early_timestep([]) == 1
    with pytest.raises(ValueError):
        pick_early_timestep([1.0, float("nan")])


def test_mask_distance_is_the_fraction_of_differing_entries() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 1, 0], bool)
    b = np.array([1, 0, 0, 1, 1, 0, 1, 0], bool)
    assert mask_distance(a, b) == 2 / 8
    assert mask_distance({"w1": a[:4], "w2": a[4:]}, {"w1": b[:4], "w2": b[4:]}) == 2 / 8
    assert max_pairwise_distance([a, b, ~a]) == 1.0


def test_early_bird_stops_when_the_last_five_masks_agree() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    base = rng.random(n) < 0.1
    flips = [300, 200, 100, 60, 8, 5, 4, 3, 2, 1, 1]  # entries flipped from one epoch's mask to the next
    history: list[np.ndarray] = []
    stops: list[bool] = []
    mask = base.copy()
    for k in flips:
        mask = mask.copy()
        mask[rng.choice(n, k, replace=False)] ^= True
        history.append(mask)
        stops.append(early_bird_converged(history, window=5, threshold=0.02))
    # the first time the five latest masks are pairwise < 2 % apart
    windows = [max_pairwise_distance(history[max(0, i - 4):i + 1]) if i >= 4 else None for i in range(len(flips))]
    expected = [w is not None and w < 0.02 for w in windows]
    assert stops == expected
    assert stops.index(True) == 8 and not any(stops[:8])  # masks 5..9 (flips 8, 5, 4, 3, 2): max distance < 2 %
    assert not early_bird_converged(history[:4], window=5, threshold=1.0)  # fewer than five masks: never


def test_global_magnitude_keep_breaks_ties_by_position() -> None:
    mags = {"a": np.array([[3.0, 1.0], [1.0, 2.0]]), "b": np.array([1.0, 5.0])}
    kept = global_magnitude_keep(mags, 3)
    assert kept["a"].tolist() == [[True, False], [False, True]] and kept["b"].tolist() == [False, True]
    kept = global_magnitude_keep(mags, 4)  # three 1.0s tie for the last place: the first in order wins
    assert kept["a"].tolist() == [[True, True], [False, True]] and kept["b"].tolist() == [False, True]
    kept = global_magnitude_keep(mags, 2, masks={"a": np.array([[False, True], [True, True]]),
                                                 "b": np.array([True, True])})
    assert kept["a"].tolist() == [[False, False], [False, True]] and kept["b"].tolist() == [False, True]


# ============================================================ data
def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_user_npz_with_split_and_with_x_y(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 6)).astype(np.float32), rng.integers(0, 3, 50)
    d = load_dataset(_write_npz(tmp_path / "s.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:]))
    assert d.classes == 3 and d.x_train.shape == (40, 6) and d.x_train.dtype == np.float32
    assert np.array_equal(d.y_test, y[40:]) and len(d.sha256) == 64
    d1 = load_dataset(_write_npz(tmp_path / "w.npz", x=x, y=y.astype(np.float64)), split_seed=3)
    d2 = load_dataset(tmp_path / "w.npz", split_seed=3)
    assert len(d1.x_train) == 40 and len(d1.x_test) == 10 and d1.y_train.dtype == np.int64
    assert np.array_equal(d1.x_test, d2.x_test) and not np.array_equal(
        d1.x_test, load_dataset(tmp_path / "w.npz", split_seed=4).x_test)
    folder = tmp_path / "f"
    folder.mkdir()
    np.save(folder / "x.npy", x.reshape(50, 1, 2, 3))
    np.save(folder / "y.npy", y)
    assert load_dataset(folder).feature_shape == (1, 2, 3)


@pytest.mark.parametrize("arrays, message", [
    (dict(x_train=np.zeros((4, 3)), y_train=np.zeros(5, int), x_test=np.zeros((2, 3)), y_test=np.zeros(2, int)),
     "y_train has 5 labels but x_train has 4 samples"),
    (dict(x_train=np.zeros((4, 3)), y_train=np.arange(4), x_test=np.zeros((2, 4)), y_test=np.zeros(2, int)),
     "x_train samples have shape (3,) but x_test samples (4,)"),
    (dict(x_train=np.array([[0.0, np.nan]] * 4), y_train=np.arange(4), x_test=np.zeros((2, 2)),
          y_test=np.zeros(2, int)), "NaN in sample 0"),
    (dict(x=np.zeros((6, 2)), y=np.array([0, 1, 0.5, 1, 0, 1])), "y[2] = 0.5 is not an integer label"),
    (dict(x=np.zeros((6, 2)), y=np.array([0, 1, -1, 1, 0, 1])), "negative"),
    (dict(x=np.zeros((6, 2)), y=np.zeros((6, 2), int)), "labels must be one integer per sample"),
    (dict(x=np.zeros((6, 2)), y=np.array(list("abcdef"))), "labels must be integers"),
    (dict(x=np.array([["a", "b"]] * 6), y=np.arange(6)), "features must be real numbers"),
    (dict(x=np.zeros((6, 2)), y=np.zeros(6, int)), "single class"),
    (dict(inputs=np.zeros((6, 2))), "expected arrays x_train, y_train, x_test, y_test (or x, y)"),
    (dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 3)),
          y_test=np.array([2, 0])), "test label 2 never occurs in the training labels"),
])
def test_bad_datasets_are_one_line_input_errors(tmp_path: Path, arrays: dict, message: str) -> None:
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SltInputError) as info:
        load_dataset(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unreadable_data_files(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 3, dtype=object), y=np.arange(3))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    for name, message in (("obj.npz", "not a readable .npz"), ("junk.npz", "not a readable .npz"),
                          ("x.npy", "has no labels"), ("missing.npz", "no such file")):
        with pytest.raises(SltInputError) as info:
            load_dataset(tmp_path / name)
        assert message in str(info.value), name
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SltInputError, match="holds none of"):
        load_dataset(empty)
    d = from_arrays({"x": np.zeros((10, 5)), "y": np.arange(10) % 2})
    with pytest.raises(SltInputError, match="conv net needs images"):
        d.for_arch("conv")


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="lth"), "unknown search method 'lth'"),
    (dict(method="eb", target_sparsity=1.0), "--target-sparsity must be in (0, 1)"),
    (dict(method="eb", target_sparsity=-0.1), "--target-sparsity must be in (0, 1)"),
    (dict(method="imp", target_sparsity=0.9), "--target-sparsity is for --method eb"),
    (dict(prune_fraction=1.0), "--prune-fraction must be in (0, 1)"),
    (dict(rounds=0), "--rounds must be an integer in [1, 1,000]"),
    (dict(arch="resnet"), "unknown architecture"),
    (dict(method="et", timesteps=1), "needs -T/--timesteps >= 2"),
    (dict(rewind_epoch=9, epochs=8), "--rewind-epoch 9 is past"),
    (dict(arch="mlp", width=0.5), "--width scales vgg16 and resnet19"),
    (dict(arch="vgg16", width=0.0), "--width must be a number in (0, 8]"),
    (dict(encoding="events"), "unknown input encoding 'events'"),
    (dict(epochs=10**23), "--epochs must be an integer in [1, 100,000]"),
    (dict(seed=2**64), "--seed must be an integer in [0, 9,223,372,036,854,775,807]"),
    (dict(hidden=2**40), "--hidden must be an integer in [1, 65,536]"),
    (dict(arch="spikformer", hidden=4096), "--hidden must be an integer in [1, 1,024]"),
    (dict(arch="conv", channels=(32, 10**6)), "--channels must be an integer in [1, 2,048]"),
    (dict(timesteps=2**63), "-T/--timesteps must be an integer in [1, 1,000,000]"),
])
def test_bad_search_options(kwargs: dict, message: str) -> None:
    with pytest.raises(SltSearchError) as info:
        SearchConfig(**kwargs)
    assert message in str(info.value) and isinstance(info.value, SltError)


# ============================================================ end to end (torch)
@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("snntorch", reason=TORCH_NEEDED)
    pytest.importorskip("sklearn")
    from slt_deploy.search import digits

    d = digits()
    return from_arrays({"x_train": d.x_train[:320], "y_train": d.y_train[:320],
                        "x_test": d.x_test[:120], "y_test": d.y_test[:120]}, name="digits[:320]",
                       image_shape=(1, 8, 8))


def _config(**kw) -> SearchConfig:
    base = dict(hidden=32, epochs=1, timesteps=4, batch_size=64, lr=5e-3, rounds=2)
    return SearchConfig(**{**base, **kw})


def _run(tmp_path: Path, tiny, name: str = "t.slt", **kw):
    from slt_deploy.search import run_search

    options = {k: kw.pop(k) for k in ("resume", "keep_checkpoints", "on_round") if k in kw}
    return run_search(_config(**kw), tmp_path / name, dataset=tiny, threads=1, **options)


def _round_files(tmp_path: Path, name: str = "t.slt") -> list[dict]:
    import torch

    folder = tmp_path / (name + ".search")
    return [torch.load(p, weights_only=True) for p in sorted(folder.glob("round-*.pt"))]


def test_imp_ladder_frozen_masks_and_late_rewinding(tmp_path: Path, tiny, monkeypatch) -> None:
    import torch

    from slt_deploy.search import trainer as trainer_mod
    from slt_deploy.search.model import build_model, prunable

    starts: list[dict[str, torch.Tensor]] = []  # the weights each training run starts from
    original_fit = trainer_mod.Trainer.fit

    def recording_fit(self, model, *args, **kwargs):
        starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return original_fit(self, model, *args, **kwargs)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", recording_fit)
    result = _run(tmp_path, tiny, method="imp", rounds=3, epochs=2, rewind_epoch=1, keep_checkpoints=True)
    rounds = _round_files(tmp_path)
    assert [r["stage"] for r in result.log["rounds"]] == ["dense", "prune", "prune", "prune"]
    total = sum(w.numel() for w in prunable(result.model).values())
    keeps = ladder_keep_counts(total, 3, 0.25)
    # independent check of the rewind point: the same init and shuffles, one epoch
    ref = build_model("mlp", (64,), 10, hidden=32, seed=0)
    trainer_mod.Trainer(lr=5e-3, batch_size=64, seed=0).fit(ref, tiny.x_train, tiny.y_train, 1, 4, key=("dense",))
    rewind = rounds[0]["rewind"]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, rewind[k]), k
    previous = None
    for r in range(1, 4):
        masks = {k: v.bool() for k, v in rounds[r]["masks"].items()}
        kept = sum(int(m.sum()) for m in masks.values())
        assert kept == keeps[r]
        assert abs(result.log["rounds"][r]["sparsity"] - ladder(r)) <= 0.5 / total
        if previous is not None:  # masks only shrink
            assert all(bool((masks[k] <= previous[k]).all()) for k in masks)
        previous = masks
        model = rounds[r]["model"]
        for name, m in masks.items():  # frozen: pruned weights are exactly zero after training
            assert bool((model[name][~m] == 0).all())
            assert bool((model[name][m] != 0).any())
        start = starts[r]  # the weights round r trains from: the rewound ones on kept connections
        for name, m in masks.items():
            assert torch.equal(start[name][m], rewind[name][m])
            assert bool((start[name][~m] == 0).all())
        for k in ("0.bias", "2.bias"):
            assert torch.equal(start[k], rewind[k])
    # the exported ticket keeps exactly the final mask, with the trained values
    first, second = result.ticket.synapse_layers()
    assert np.array_equal(first.weights.mask, previous["0.weight"].numpy())
    assert np.array_equal(first.weights.values, rounds[3]["model"]["0.weight"].numpy())
    assert result.log["ticket"]["sparsity"] == pytest.approx(1 - keeps[3] / total)
    assert json.loads((tmp_path / "t.json").read_text())["ticket"]["correct_reference"] == \
        result.log["ticket"]["correct_reference"]


def test_early_time_ticket_picks_t_prime_by_the_kl_rule(tmp_path: Path, tiny) -> None:
    import torch

    from slt_deploy.search.model import build_model, reset_state
    from slt_deploy.search.trainer import Trainer

    T = 6
    result = _run(tmp_path, tiny, method="et", timesteps=T, rounds=1, epochs=2)
    et = result.log["et"]
    # recompute the KL independently: the warm-up epoch, then the network run step by step
    model = build_model("mlp", (64,), 10, hidden=32, seed=0)
    Trainer(lr=5e-3, batch_size=64, seed=0).fit(model, tiny.x_train, tiny.y_train, 1, T, key=("dense",))
    model.eval()
    x = torch.from_numpy(tiny.x_train[:64])
    reset_state(model)
    with torch.no_grad():
        counts = np.cumsum(np.stack([model(x).numpy() for _ in range(T)]), axis=0).astype(np.float64)
    logits = [counts[t - 1] * (T / t) for t in range(1, T + 1)]
    log_p = logits[-1] - np.log(np.exp(logits[-1]).sum(axis=1, keepdims=True))
    kl = []
    for t in range(1, T):
        log_q = logits[t - 1] - np.log(np.exp(logits[t - 1]).sum(axis=1, keepdims=True))
        kl.append(float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean()))
    np.testing.assert_allclose(et["kl"], kl, rtol=1e-9, atol=1e-12)
    t_prime = pick_early_timestep(kl, 0.6)
    assert et["search_timesteps"] == result.log["search_timesteps"] == t_prime
    stages = [(r["stage"], r["timesteps"]) for r in result.log["rounds"]]
    assert stages == [("dense", t_prime), ("prune", t_prime), ("final", T)]
    assert result.ticket.timesteps == T


def test_early_bird_stops_on_settled_masks_and_retrains_from_init(tmp_path: Path, tiny, monkeypatch) -> None:
    import torch

    from slt_deploy.search import trainer as trainer_mod
    from slt_deploy.search.model import build_model

    starts: list[dict[str, torch.Tensor]] = []
    original_fit = trainer_mod.Trainer.fit

    def recording_fit(self, model, *args, **kwargs):
        starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return original_fit(self, model, *args, **kwargs)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", recording_fit)
    # a loose threshold: the first five masks already agree, so the search stops at epoch 5
    result = _run(tmp_path, tiny, "loose.slt", method="eb", target_sparsity=0.8, eb_threshold=0.9, epochs=2)
    eb = result.log["eb"]
    assert eb["converged"] and eb["stop_epoch"] == 5
    assert [r["stage"] for r in result.log["rounds"]] == ["eb-search"] * 5 + ["final"]
    assert eb["max_distance"][:4] == [None] * 4 and eb["max_distance"][4] < 0.9
    init = build_model("mlp", (64,), 10, hidden=32, seed=0).state_dict()
    final_start = starts[-1]
    for name, mask in result.masks.items():
        assert torch.equal(final_start[name], init[name] * mask)
    assert result.log["ticket"]["sparsity"] == pytest.approx(0.8, abs=1e-3)
    # an impossible threshold: no convergence, the search runs to its cap (max(epochs, window) = 5)
    result = _run(tmp_path, tiny, "strict.slt", method="eb", target_sparsity=0.8, eb_threshold=1e-9, epochs=2)
    assert not result.log["eb"]["converged"] and result.log["eb"]["stop_epoch"] == 5


def _dyadic_alpha(model):
    """Replace each channel's α by the nearest power of two, so every product and sum is exact."""
    import torch

    from slt_deploy.search.model import prunable

    with torch.no_grad():
        for w in prunable(model).values():
            a = w.abs().amax(dim=1, keepdim=True)
            p = torch.where(a > 0, torch.exp2(torch.round(torch.log2(a.clamp(min=1e-30)))), torch.zeros_like(a))
            w.copy_(torch.sign(w) * p)
    return model


def test_binary_ticket_is_exactly_alpha_sign_and_matches_snntorch(tmp_path: Path, tiny) -> None:
    import torch

    from slt_deploy.ir.weights import dense_weights
    from slt_deploy.search.model import prunable, reset_state

    result = _run(tmp_path, tiny, method="imp", rounds=2, epochs=1, binary=True)
    layers = result.ticket.synapse_layers()
    weights = prunable(result.model)
    for layer, (name, w) in zip(layers, weights.items(), strict=True):
        assert layer.weights.kind == "binary"
        w = w.detach().numpy()
        mask = result.masks[name].numpy()
        assert np.array_equal(layer.weights.mask, mask)
        assert np.array_equal(dense_weights(layer.weights), w)  # bit for bit: α·sign on kept, 0 elsewhere
        for o in range(w.shape[0]):  # one magnitude per output channel: the mean |latent| of the kept
            kept = np.abs(w[o][mask[o]])
            assert kept.size == 0 or np.all(kept == kept[0])
    # accuracy: the packed ticket on the reference vs the snnTorch network it came from (the first
    # layer sums analog inputs times arbitrary α, whose float32 rounding may differ in a rare spike)
    ticket = result.log["ticket"]
    assert abs(ticket["accuracy_reference"] - ticket["accuracy_torch"]) <= 2 / len(tiny.y_test)
    # spikes, exactly, where every sum is exact: dyadic α (powers of two) and inputs k/16
    model = _dyadic_alpha(result.model)
    x = tiny.x_test
    t = slt.from_torch(model, torch.from_numpy(x[:1]), timesteps=4, binarize=True, masks=result.masks)
    ref = slt.run(t, x)
    reset_state(model)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        hidden, out = [], []
        for _ in range(4):
            h = model[1](model[0](xt))
            hidden.append(h.numpy())
            out.append(model[3](model[2](h)).numpy())
    assert np.array_equal(ref.spikes, np.stack(out))
    assert np.array_equal(ref.layers["1"], np.stack(hidden))
    assert ref.spikes.sum() > 0 and np.stack(hidden).sum() > 0


def test_binary_from_scratch_and_conv_with_folded_batchnorm(tmp_path: Path, tiny) -> None:
    pytest.importorskip("snntorch")
    result = _run(tmp_path, tiny, method="imp", rounds=1, epochs=1, arch="conv", channels=(4, 8),
                  binary=True, binary_from="scratch", prune_fraction=0.5)
    assert [r["stage"] for r in result.log["rounds"]] == ["dense", "prune"]  # no separate fine-tune
    assert "folded_batchnorm" in result.ticket.metadata
    assert all(layer.weights.kind == "binary" for layer in result.ticket.synapse_layers())
    ticket = result.log["ticket"]
    # BatchNorm folding rounds differently from conv-then-BN in torch: compare predictions, not bits
    assert abs(ticket["accuracy_reference"] - ticket["accuracy_torch"]) <= 0.05
    assert ticket["sparsity"] == pytest.approx(0.5, abs=1e-3)


class _Stop(Exception):
    pass


def test_resume_continues_after_the_last_completed_round(tmp_path: Path, tiny) -> None:
    import torch

    full = _run(tmp_path, tiny, "full.slt", method="imp", rounds=3, epochs=1, binary=True)

    def stop_after_round_1(index: int, entry: dict) -> None:
        if index == 1:
            raise _Stop

    with pytest.raises(_Stop):
        _run(tmp_path, tiny, "cut.slt", method="imp", rounds=3, epochs=1, binary=True, on_round=stop_after_round_1)
    folder = tmp_path / "cut.slt.search"
    assert sorted(p.name for p in folder.iterdir()) == ["log.json", "round-00.pt", "round-01.pt"]
    assert not (tmp_path / "cut.slt").exists()
    with pytest.raises(SltSearchError, match="pass --resume"):
        _run(tmp_path, tiny, "cut.slt", method="imp", rounds=3, epochs=1, binary=True)
    with pytest.raises(SltSearchError, match="made with rounds=3"):
        _run(tmp_path, tiny, "cut.slt", method="imp", rounds=4, epochs=1, binary=True, resume=True)
    seen: list[int] = []
    resumed = _run(tmp_path, tiny, "cut.slt", method="imp", rounds=3, epochs=1, binary=True, resume=True,
                   on_round=lambda i, e: seen.append(i))
    assert seen == [2, 3, 4] and resumed.log["resumed_after_round"] == 1
    assert [r["stage"] for r in resumed.log["rounds"]] == ["dense", "prune", "prune", "prune", "binary"]
    assert sorted(p.name for p in folder.iterdir()) == ["extend.pt"]  # only the last pruning round is kept
    for name, w in resumed.model.state_dict().items():  # same result as the uninterrupted search
        assert torch.equal(w, full.model.state_dict()[name]), name
    assert resumed.log["ticket"]["correct_reference"] == full.log["ticket"]["correct_reference"]


def test_a_finished_search_grows_with_more_rounds(tmp_path: Path, tiny) -> None:
    # `slt search ... --resume --rounds 3` after a 2-round search: the same ticket as a 3-round search
    import torch

    full = _run(tmp_path, tiny, "full.slt", method="imp", rounds=3, epochs=1, binary=True)
    _run(tmp_path, tiny, "grow.slt", method="imp", rounds=2, epochs=1, binary=True)
    with pytest.raises(SltSearchError, match="give --rounds larger than 2"):
        _run(tmp_path, tiny, "grow.slt", method="imp", rounds=2, epochs=1, binary=True, resume=True)
    seen: list[int] = []
    grown = _run(tmp_path, tiny, "grow.slt", method="imp", rounds=3, epochs=1, binary=True, resume=True,
                 on_round=lambda i, e: seen.append(i))
    assert seen == [3, 4]  # round 3 of the ladder, then the binary fine-tune again
    assert [r["stage"] for r in grown.log["rounds"]] == ["dense", "prune", "prune", "prune", "binary"]
    for name, w in grown.model.state_dict().items():
        assert torch.equal(w, full.model.state_dict()[name]), name
    with pytest.raises(SltSearchError, match="made with epochs=1"):
        _run(tmp_path, tiny, "grow.slt", method="imp", rounds=4, epochs=2, binary=True, resume=True)


def test_sigterm_stops_the_search_like_ctrl_c(tmp_path: Path, tiny) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    np.savez(tmp_path / "d.npz", x=tiny.x_train, y=tiny.y_train, x_test=tiny.x_test, y_test=tiny.y_test)
    cmd = [sys.executable, "-m", "slt_deploy", "search", "--method", "imp", "--data", str(tmp_path / "d.npz"),
           "--rounds", "6", "--epochs", "3", "--hidden", "32", "-T", "4", "--out", str(tmp_path / "t.slt")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "t.slt.search"
    deadline = time.monotonic() + 240
    while not list(folder.glob("round-*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().startswith("slt: terminated (SIGTERM):") and "--resume" in err and "Traceback" not in err


def test_interrupt_before_any_round_says_nothing_was_kept(tmp_path: Path, tiny, monkeypatch) -> None:
    from typer.testing import CliRunner

    from slt_deploy.cli import app
    from slt_deploy.search import engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_search", interrupted)
    np.savez(tmp_path / "d.npz", x=tiny.x_train, y=tiny.y_train, x_test=tiny.x_test, y_test=tiny.y_test)
    res = CliRunner().invoke(app, ["search", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "t.slt")])
    assert res.exit_code == 130 and "nothing was kept" in res.stderr and "kept in" not in res.stderr


# ============================================================ CLI
def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _app():
    import typer

    from slt_deploy.cli import user_errors
    from slt_deploy.search.command import search

    app = typer.Typer()
    app.command("search")(user_errors(search))
    app.command("noop")(lambda: None)  # keep "search" a subcommand
    return app


def test_early_bird_resumes_with_its_mask_history_and_optimiser(tmp_path: Path, tiny) -> None:
    import torch

    kw = dict(method="eb", target_sparsity=0.8, eb_threshold=0.9, epochs=1)
    full = _run(tmp_path, tiny, "full.slt", **kw)

    def stop(index: int, entry: dict) -> None:
        if index == 2:
            raise _Stop

    with pytest.raises(_Stop):
        _run(tmp_path, tiny, "cut.slt", on_round=stop, **kw)
    resumed = _run(tmp_path, tiny, "cut.slt", resume=True, **kw)
    assert resumed.log["eb"] == full.log["eb"] and resumed.log["resumed_after_round"] == 2
    for name, w in resumed.model.state_dict().items():
        assert torch.equal(w, full.model.state_dict()[name]), name


@pytest.mark.parametrize("args, message", [
    (["--method", "magic"], "unknown search method 'magic'"),
    (["--method", "eb", "--target-sparsity", "1.2"], "--target-sparsity must be in (0, 1)"),
    (["--method", "imp", "--target-sparsity", "0.5"], "--target-sparsity is for --method eb"),
    (["--data", "nowhere.npz"], "no such file or folder"),
    (["--binary-from", "scratch"], "add --binary"),
    (["--device", "tpu"], "--device 'tpu': choose one of cpu, cuda, auto"),
    (["--amp", "on"], "--amp on needs --device cuda"),
    (["--arch", "conv", "--width", "2"], "--width scales vgg16 and resnet19; size the conv net with --channels"),
    (["--check-samples", "0"], "--check-samples must be an integer >= 1"),
    (["--workers", "-1"], "--workers must be an integer in [0, 256]"),
    (["--threads", "0"], "--threads must be an integer in [1, 1024]"),
    (["--epochs", "99999999999999999999999"], "--epochs must be an integer in [1, 100,000]"),
    (["--arch", "vgg16"], "--arch vgg16 needs images whose height and width are multiples of 32"),
    (["--arch", "resnet19", "--ann-twin"], "--ann-twin trains the ReLU twin of --arch mlp or conv"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(_app(), ["search", "--out", str(tmp_path / "t.slt"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


@pytest.mark.skipif(_cuda_available(), reason="this machine has a GPU")
def test_cli_device_cuda_without_a_gpu(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(_app(), ["search", "--device", "cuda", "--out", str(tmp_path / "t.slt")])
    assert res.exit_code == 2 and "--device cuda: PyTorch sees no CUDA device" in res.stderr
    assert res.stderr.count("\n") == 1


def test_cli_bad_dataset_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    bad = _write_npz(tmp_path / "d.npz", x=np.zeros((5, 3)), y=np.array([0, 1, 1.5, 0, 1]))
    res = CliRunner().invoke(_app(), ["search", "--data", str(bad), "--out", str(tmp_path / "t.slt")])
    assert res.exit_code == 2 and "not an integer label" in res.stderr and res.stderr.count("\n") == 1


def test_cli_interrupt_then_resume(tmp_path: Path, tiny, monkeypatch) -> None:
    from typer.testing import CliRunner

    from slt_deploy.search import engine

    np.savez(tmp_path / "tiny.npz", x_train=tiny.x_train, y_train=tiny.y_train, x_test=tiny.x_test,
             y_test=tiny.y_test)
    out = tmp_path / "t.slt"
    args = ["search", "--method", "imp", "--data", str(tmp_path / "tiny.npz"), "--rounds", "2", "--epochs", "1",
            "--hidden", "16", "-T", "3", "--out", str(out)]
    original = engine._Search._commit

    def interrupted(self, entry):
        original(self, entry)
        if len(self.state["rounds"]) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine._Search, "_commit", interrupted)
    res = CliRunner().invoke(_app(), args)
    assert res.exit_code == 130 and "2 completed round(s) kept" in res.stderr and "--resume" in res.stderr
    monkeypatch.setattr(engine._Search, "_commit", original)
    res = CliRunner().invoke(_app(), [*args, "--resume", "--json"])
    assert res.exit_code == 0, res.output
    log = json.loads(res.stdout)
    assert log["resumed_after_round"] == 1 and len(log["rounds"]) == 3
    assert log == json.loads((tmp_path / "t.json").read_text())
    ticket = slt.load(out)
    assert ticket.timesteps == 3
    assert float((slt.run(ticket, tiny.x_test).predictions() == tiny.y_test).mean()) == \
        log["ticket"]["accuracy_reference"]


def test_training_module_stays_a_compatible_name() -> None:
    pytest.importorskip("snntorch")
    from slt_deploy import training
    from slt_deploy.search import DigitsTrainer, digits_model

    assert training.DigitsTrainer is DigitsTrainer and training.digits_model is digits_model
    model = digits_model(hidden=16)
    assert [type(m).__name__ for m in model] == ["Linear", "Leaky", "Linear", "Leaky"]


def test_a_plugged_in_method_gets_the_engine(tmp_path: Path, tiny) -> None:
    """A new method is a SearchMethod subclass and a registry entry: training, masks decided by
    rank 0, checkpoints, resume, the binary fine-tune and export come from the engine."""
    import torch

    from slt_deploy.search import register_method
    from slt_deploy.search.methods import _REGISTRY
    from slt_deploy.search.methods.base import SearchMethod

    class RandomTicket(SearchMethod):
        """Train dense, keep a random half of every layer (drawn once, on rank 0), retrain."""

        name, title = "random-half", "Random half"

        def start(self, ctx):
            ctx.saved["init"] = ctx.snapshot()
            return "dense"

        def phase_dense(self, ctx):
            seconds = ctx.fit(1, ctx.cfg.timesteps, ("dense",), "dense")
            gen = torch.Generator().manual_seed(ctx.cfg.seed)
            ctx.masks = ctx.share_masks(lambda: {n: torch.rand(w.shape, generator=gen) < 0.5
                                                 for n, w in ctx.model.named_parameters() if w.ndim > 1})
            acc, ev = ctx.evaluate(ctx.cfg.timesteps)
            ctx.state["phase"] = "sparse"
            return ctx.entry("dense", ctx.cfg.timesteps, 1, seconds, acc, ev)

        def phase_sparse(self, ctx):
            ctx.model.load_state_dict(ctx.saved["init"])
            seconds = ctx.fit(1, ctx.cfg.timesteps, ("sparse",), "sparse")
            acc, ev = ctx.evaluate(ctx.cfg.timesteps)
            ctx.state["phase"] = ctx.after_ticket()
            return ctx.entry("sparse", ctx.cfg.timesteps, 1, seconds, acc, ev)

    with pytest.raises(ValueError, match="lower-case identifier"):
        register_method("Random half", RandomTicket)
    register_method("random_half", RandomTicket)
    try:
        def stop(index: int, entry: dict) -> None:
            if index == 0:
                raise _Stop

        with pytest.raises(_Stop):
            _run(tmp_path, tiny, method="random_half", binary=True, on_round=stop)
        result = _run(tmp_path, tiny, method="random_half", binary=True, resume=True)
    finally:
        _REGISTRY.pop("random_half")
    assert [r["stage"] for r in result.log["rounds"]] == ["dense", "sparse", "binary"]
    assert result.log["resumed_after_round"] == 0 and 0.45 < result.log["ticket"]["sparsity"] < 0.55
    assert all(layer.weights.kind == "binary" for layer in result.ticket.synapse_layers())
    assert result.log["rounds"][1]["ranks"]["mask_sha256"] == result.log["rounds"][2]["ranks"]["mask_sha256"]
    with pytest.raises(SltSearchError, match="unknown search method 'random_half'"):
        SearchConfig(method="random_half")
