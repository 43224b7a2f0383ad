"""Lyapunov Noise Pruning (LNP) and the baselines it is compared with.

LNP, before any training and without a task (choices stated; the paper publishes no code):

1. **Noise-driven synapse sampling** (after Moore & Chaudhuri, NeurIPS 2020). Drive the
   network with noise (:func:`.hrsnn.noise_drive`), take the membrane covariance ``C``, and
   give synapse ``j → i`` the score ``|w_ij|·(C_ii + C_jj − 2·sign(w_ij)·C_ij)`` (how much the
   noise response depends on it). The Lyapunov part: from the surrogate Jacobians along the
   same trajectory, neuron ``i``'s local expansion ``r_i = mean_t ‖J_t[:, i]‖`` (how much a
   perturbation of ``i`` grows in one step); the edge's factor is the harmonic mean
   ``2·r_i·r_j / (r_i + r_j)``. Keep probabilities ``p = clip(a · score · factor, 0.05, 1)``,
   ``a`` chosen (bisection) so that ``keep`` of the synapses survive on average, sampled once; a
   survivor is re-weighted ``w / p`` (Moore & Chaudhuri's unbiased re-weighting, capped at
   4·w so a rare survivor does not dominate).
2. **Neuron removal**: the ``remove`` fraction of neurons with the lowest betweenness
   centrality (networkx, directed, distance ``1/|w|``, ``k = min(n, 64)`` sampled sources,
   seeded) are removed with their synapses.
3. **Delocalisation**: a neuron whose degree is below the median degree of its neighbours
   gets edges to random neurons two hops away until it reaches that median (at most
   ``add_cap`` of the synapses in all), weights drawn like the initial ones; this restores
   degree heterogeneity in local neighbourhoods.
4. **Bayesian optimisation of the time constants**: Optuna's TPE sampler (seeded) searches
   the gamma shape in [1.5, 6] and scale in [0.5, 4] (mean τ_m between 1.75 and 25 steps:
   bounded, because an unbounded search pushed τ to ~166 steps and hurt the chaotic tasks),
   minimising ``|λ_1|``, the largest Lyapunov exponent's distance from 0 (edge of chaos).

Baselines: ``random`` (the same synapse and neuron counts, chosen uniformly), ``activity``
(remove the least active neurons on task data, after training the readout), ``imp``
(iterative magnitude pruning of the recurrent synapses in rounds, the readout retrained each
round; with a fixed recurrent network and a trained readout, magnitudes do not change between
rounds, so it is global magnitude pruning reached in steps).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import hrsnn
from .hrsnn import HRSNN


def noise_sample(net: HRSNN, seed: int, keep: float = 0.5, steps: int = 300) -> HRSNN:
    """LNP step 1: sample synapses with noise-covariance and Lyapunov-informed probabilities; re-weight."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own (the build's stream drew the mask)
    v, _ = hrsnn.simulate(net, hrsnn.noise_drive(net, steps, seed))
    v = v[:, 0].astype(np.float64)
    c = np.cov(v.T)
    w = net.w_rec.astype(np.float64)
    d = np.diag(c)
    score = np.abs(w) * np.maximum(d[:, None] + d[None, :] - 2 * np.sign(w) * c, 0.0)
    r = np.mean([np.linalg.norm(j, axis=0) for j in hrsnn.jacobians(net, v[50:])], axis=0)
    factor = 2 * r[:, None] * r[None, :] / np.maximum(r[:, None] + r[None, :], 1e-12)
    weight = np.where(w != 0, score * factor, 0.0)
    p = np.zeros_like(w)
    p[w != 0] = _probabilities(weight[w != 0], keep)
    kept = rng.random(w.shape) < p
    scaled = np.where(kept, w / np.maximum(p, 1e-12), 0.0)
    scaled = np.clip(scaled, -4 * np.abs(w), 4 * np.abs(w))
    return replace(net, w_rec=scaled.astype(np.float32))


def _probabilities(weight: np.ndarray, keep: float) -> np.ndarray:
    """``clip(a·weight, 0.05, 1)`` with ``a`` found by bisection (in log space) so that the mean is ``keep``."""
    wn = weight / max(float(weight.mean()), 1e-300)
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.clip(np.exp(mid) * wn, 0.05, 1.0).mean() < keep:
            lo = mid
        else:
            hi = mid
    return np.clip(np.exp(hi) * wn, 0.05, 1.0)


def betweenness(net: HRSNN, seed: int) -> np.ndarray:
    """Betweenness centrality of every neuron (directed, distance 1/|w|, k sampled sources)."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(range(net.n))
    dst, src = np.nonzero(net.w_rec)
    g.add_weighted_edges_from((int(j), int(i), 1.0 / abs(float(net.w_rec[i, j]))) for i, j in zip(dst, src,
                                                                                                     strict=True))
    bc = nx.betweenness_centrality(g, k=min(net.n, 64), weight="weight", seed=seed)
    return np.array([bc[i] for i in range(net.n)])


def remove_central_least(net: HRSNN, seed: int, remove: float = 0.5) -> tuple[HRSNN, np.ndarray]:
    """LNP step 2: drop the ``remove`` fraction with the lowest betweenness; returns the net and the kept mask."""
    bc = betweenness(net, seed)
    order = np.lexsort((np.arange(net.n), bc))  # ties broken by index: deterministic
    keep = np.ones(net.n, bool)
    keep[order[: int(round(remove * net.n))]] = False
    return hrsnn.keep_neurons(net, keep), keep


def delocalise(net: HRSNN, seed: int, add_cap: float = 0.1, density: float = 0.2) -> HRSNN:
    """LNP step 3: raise low-degree neurons to their neighbourhood's median degree with 2-hop edges."""
    rng = np.random.default_rng([seed, 3])
    w = net.w_rec.copy()
    adj = (w != 0) | (w.T != 0)
    budget = int(add_cap * np.count_nonzero(w))
    std = hrsnn.GAIN / np.sqrt(max(net.n, 1) * density)
    for i in rng.permutation(net.n):
        if budget <= 0:
            break
        nbrs = np.flatnonzero(adj[i])
        if nbrs.size == 0:
            continue
        want = int(np.median(adj[nbrs].sum(axis=1))) - int(adj[i].sum())
        two_hop = np.flatnonzero(adj[nbrs].any(axis=0) & ~adj[i])
        two_hop = two_hop[two_hop != i]
        for j in rng.permutation(two_hop)[: max(0, min(want, budget))]:
            sign = -4.0 if w[:, j].sum() < 0 else 1.0  # keep j's Dale sign
            w[i, j] = sign * abs(rng.normal(0.0, std))
            adj[i, j] = adj[j, i] = True
            budget -= 1
    return replace(net, w_rec=w.astype(np.float32))


def tune_taus(net: HRSNN, seed: int, trials: int = 12) -> tuple[HRSNN, dict[str, float]]:
    """LNP step 4: Optuna TPE over the gamma (shape, scale) of τ_m, minimising |λ_1| (bounded ranges)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        cand = hrsnn.with_taus(net, trial.suggest_float("shape", 1.5, 6.0), trial.suggest_float("scale", 0.5, 4.0))
        return abs(float(hrsnn.lyapunov(cand, seed)[0]))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_params
    return hrsnn.with_taus(net, best["shape"], best["scale"]), {"shape": best["shape"], "scale": best["scale"],
                                                                 "abs_lambda1": float(study.best_value)}


def lnp(net: HRSNN, seed: int, keep: float = 0.5, remove: float = 0.5, trials: int = 12,
        steps: tuple[int, ...] = (1, 2, 3, 4)) -> tuple[HRSNN, dict[str, object]]:
    """All four LNP steps (or the ``steps`` given), deterministic in ``seed``; returns the net and a log."""
    log: dict[str, object] = {"synapses_before": net.synapses, "neurons_before": net.n}
    if 1 in steps:
        net = noise_sample(net, seed, keep)
        log["after_noise_sampling"] = net.synapses
    if 2 in steps:
        net, _ = remove_central_least(net, seed, remove)
        log["after_neuron_removal"] = {"neurons": net.n, "synapses": net.synapses}
    if 3 in steps:
        net = delocalise(net, seed)
        log["after_delocalisation"] = net.synapses
    if 4 in steps:
        net, log["tau_search"] = tune_taus(net, seed, trials)
    return net, log


# ------------------------------------------------------------------ baselines
def random_prune(net: HRSNN, seed: int, neurons: int, synapses: int) -> HRSNN:
    """Uniformly chosen ``neurons`` kept, then ``synapses`` of their synapses kept (same counts as LNP)."""
    rng = np.random.default_rng([seed, 5])
    keep = np.zeros(net.n, bool)
    keep[rng.choice(net.n, neurons, replace=False)] = True
    sub = hrsnn.keep_neurons(net, keep)
    return _keep_synapses(sub, rng.permutation(np.flatnonzero(sub.w_rec))[:synapses])


def activity_prune(net: HRSNN, rates: np.ndarray, neurons: int) -> HRSNN:
    """Keep the ``neurons`` most active neurons (``rates`` measured on task data; ties by index)."""
    order = np.lexsort((np.arange(net.n), -rates))
    keep = np.zeros(net.n, bool)
    keep[order[:neurons]] = True
    return hrsnn.keep_neurons(net, keep)


def magnitude_prune(net: HRSNN, synapses: int) -> HRSNN:
    """Keep the ``synapses`` largest recurrent weights by magnitude (one IMP round's rule)."""
    flat = np.abs(net.w_rec).ravel()
    order = np.lexsort((np.arange(flat.size), -flat))
    return _keep_synapses(net, order[:synapses])


def _keep_synapses(net: HRSNN, flat_index: np.ndarray) -> HRSNN:
    w = np.zeros(net.w_rec.size, np.float32)
    w[flat_index] = net.w_rec.ravel()[flat_index]
    return replace(net, w_rec=w.reshape(net.w_rec.shape))
