"""The heterogeneous recurrent SNN (HRSNN) and its clustered variant (CHRSNN).

``n`` recurrent LIF neurons, one :class:`~slt_deploy.ir.RLIF` layer (snnTorch RLeaky's order,
subtract reset with snnTorch's default delay), fed by ``n_in`` graded inputs:

    v[t] = ((β ⊙ v'[t−1] + W_in·x[t]) + W_rec·s[t−1]) − θ·s[t−1],   s[t] = v[t] > θ

Choices (the paper states the model but not every constant):

- time constants per neuron ``τ_m = 1 + Gamma(k, ϑ)`` steps, clipped to ``tau_bounds``,
  ``β = exp(−1/τ_m)`` (float32); θ = 1 for every neuron. The per-neuron quantiles
  ``u_i ~ U(0, 1)`` are kept, so :func:`with_taus` can redraw β from another (k, ϑ) for the
  same neurons (LNP step 4) deterministically;
- HRSNN recurrence: Erdős–Rényi with ``density``; CHRSNN: ``clusters`` Watts–Strogatz
  small-world graphs (networkx, each node linked to its ``k`` nearest, rewired with
  probability 0.1, both directions) plus inter-cluster edges with ``density / 10``;
- weights ``|N(0, (g / sqrt(n·density))²)|``, ``g = 1.5``, 20% of the neurons inhibitory
  (their outgoing weights negative and 4× stronger, so excitation and inhibition balance on
  average), input weights ``N(0, 1)`` dense.

The surrogate Jacobian of the membrane map (for the Lyapunov spectrum) replaces the
Heaviside's derivative by snnTorch's ATan surrogate ``σ'(x) = (α/2)/(1 + (πα x/2)²)``, α = 2:

    J_t = diag(β − θ·σ'(v[t] − θ)) + W_rec · diag(σ'(v[t] − θ))
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

ALPHA = 2.0
GAIN = 1.5


@dataclass(frozen=True)
class HRSNN:
    """One network: input and recurrent float32 weights (0 = no synapse), per-neuron β, θ and τ quantiles."""

    w_in: np.ndarray        # (n, n_in)
    w_rec: np.ndarray       # (n, n): w_rec[i, j] is the synapse j -> i
    beta: np.ndarray        # (n,)
    threshold: np.ndarray   # (n,)
    quantile: np.ndarray    # (n,) the τ quantiles u_i
    tau_shape: float
    tau_scale: float
    tau_bounds: tuple[float, float] = (2.0, 40.0)

    @property
    def n(self) -> int:
        return int(self.w_rec.shape[0])

    @property
    def synapses(self) -> int:
        return int(np.count_nonzero(self.w_rec))


def taus(quantile: np.ndarray, shape: float, scale: float, bounds: tuple[float, float]) -> np.ndarray:
    """``τ_m = clip(1 + Gamma(shape, scale)⁻¹(u), bounds)`` per neuron."""
    from scipy.stats import gamma

    return np.clip(1.0 + gamma.ppf(quantile, shape, scale=scale), *bounds)


def with_taus(net: HRSNN, shape: float, scale: float) -> HRSNN:
    """The same network with β redrawn from ``Gamma(shape, scale)`` at the same per-neuron quantiles."""
    beta = np.exp(-1.0 / taus(net.quantile, shape, scale, net.tau_bounds)).astype(np.float32)
    return replace(net, beta=beta, tau_shape=float(shape), tau_scale=float(scale))


def _mask(n: int, density: float, rng: np.random.Generator, clusters: int) -> np.ndarray:
    if clusters <= 1:
        mask = rng.random((n, n)) < density
    else:
        import networkx as nx

        mask = rng.random((n, n)) < density / 10
        bounds = np.linspace(0, n, clusters + 1).astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            size = hi - lo
            k = max(2, min(size - 1, int(round(density * size * 2))) // 2 * 2)
            g = nx.connected_watts_strogatz_graph(size, k, 0.1, seed=int(rng.integers(2**31)))
            for a, b in g.edges():
                mask[lo + a, lo + b] = mask[lo + b, lo + a] = True
    np.fill_diagonal(mask, False)
    return mask


def build(n: int, n_in: int, seed: int, density: float = 0.2, tau_shape: float = 3.0, tau_scale: float = 3.0,
          clusters: int = 1) -> HRSNN:
    """A random HRSNN (``clusters`` > 1: CHRSNN) with ``n`` neurons and ``n_in`` inputs, deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 0])  # every random step has its own stream ([seed, step])
    mask = _mask(n, density, rng, clusters)
    w = rng.normal(0.0, GAIN / np.sqrt(n * density), (n, n))
    inhibitory = rng.random(n) < 0.2
    w = np.where(inhibitory[None, :], -4.0 * np.abs(w), np.abs(w)) * mask  # balanced: 0.8·E = 0.2·4·I
    w_in = rng.normal(0.0, 1.0, (n, n_in))
    quantile = rng.uniform(0.01, 0.99, n)
    net = HRSNN(w_in.astype(np.float32), w.astype(np.float32), np.zeros(n, np.float32), np.ones(n, np.float32),
                quantile, tau_shape, tau_scale)
    return with_taus(net, tau_shape, tau_scale)


def keep_neurons(net: HRSNN, keep: np.ndarray) -> HRSNN:
    """The sub-network of the neurons where ``keep`` is True (their synapses among themselves)."""
    idx = np.flatnonzero(keep)
    return replace(net, w_in=net.w_in[idx], w_rec=net.w_rec[np.ix_(idx, idx)], beta=net.beta[idx],
                   threshold=net.threshold[idx], quantile=net.quantile[idx])


def simulate(net: HRSNN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Membranes and spikes ``(T, batch, n)`` for graded input ``x`` ``(T, batch, n_in)``, float32, RLIF's order."""
    T, batch = x.shape[:2]
    v = np.zeros((batch, net.n), np.float32)
    s = np.zeros_like(v)
    vs, ss = np.empty((T, batch, net.n), np.float32), np.empty((T, batch, net.n), np.float32)
    drive = np.einsum("tbi,ni->tbn", x.astype(np.float32), net.w_in).astype(np.float32)
    for t in range(T):
        v = ((net.beta * v + drive[t]) + s @ net.w_rec.T) - net.threshold * s
        s = (v > net.threshold).astype(np.float32)
        vs[t], ss[t] = v, s
    return vs, ss


def surrogate(v: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """snnTorch's ATan surrogate derivative at ``v − θ``."""
    z = v.astype(np.float64) - threshold
    return (ALPHA / 2) / (1.0 + (np.pi / 2 * ALPHA * z) ** 2)


def jacobians(net: HRSNN, v: np.ndarray):
    """The surrogate Jacobians ``J_t`` along one trajectory of membranes ``v`` ``(T, n)``."""
    w = net.w_rec.astype(np.float64)
    beta, theta = net.beta.astype(np.float64), net.threshold.astype(np.float64)
    for vt in v:
        d = surrogate(vt, theta)
        jac = w * d[None, :]
        jac[np.diag_indices_from(jac)] += beta - theta * d
        yield jac


def noise_drive(net: HRSNN, steps: int, seed: int, std: float = 0.5) -> np.ndarray:
    """Task-free drive: Gaussian input ``(steps, 1, n_in)``, deterministic in ``seed``."""
    return np.random.default_rng([seed, 7]).normal(0.0, std, (steps, 1, net.w_in.shape[1])).astype(np.float32)


def lyapunov(net: HRSNN, seed: int, steps: int = 300, warmup: int = 50, k: int = 8) -> np.ndarray:
    """The ``k`` leading Lyapunov exponents (per step) of ``net`` driven by noise (:func:`noise_drive`)."""
    from .lyapunov import spectrum

    v, _ = simulate(net, noise_drive(net, steps, seed))
    return spectrum(jacobians(net, v[:, 0]), k=min(k, net.n), warmup=warmup)
