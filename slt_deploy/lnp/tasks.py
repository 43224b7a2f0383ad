"""Offline tasks for the same pruned network, and LI readouts trained by ridge regression.

- **Sequential digits** (scikit-learn's 8×8 digits, pixels/16): the 8 rows are 8 time steps of
  8 graded inputs; 80/20 split by ``split_seed``. Readout: Linear(n → 10) into an LI with
  β = 1 (it sums ``W·s[t] + b`` over the 8 steps); the class is the argmax at the last step.
  Trained by ridge regression of one-hot labels on the spike counts ``Σ_t s[t]`` (bias
  ``c/T`` so the LI's sum of T biases is the fitted intercept).
- **Lorenz-63** (σ = 10, ρ = 28, β = 8/3; scipy ``solve_ivp``, RK45, rtol 1e-9, sampled every
  0.02 from (1, 1, 1) after a 10-unit transient) and **Mackey–Glass** (τ = 17, β = 0.2, γ = 0.1,
  n = 10; Euler with step 0.1 and a constant 1.2 history, sampled every 1 after 500 units): the
  standardised scalar series is the input (one graded input per step) and the target is the
  next value, one step ahead. Readout: Linear(n → 1) into an LI with β_o = 0.8; ridge
  regression of the target on the LI-filtered spikes ``F[t] = Σ_k β_o^k s[t−k]`` over the first
  70% (after a 100-step warm-up), bias ``c·(1 − β_o)``; NRMSE = RMSE / std(target) on the rest,
  measured on the exported ticket's own output.

Ridge: ``(FᵀF + λ·I)⁻¹ FᵀY`` with ``λ = 1e-3·trace(FᵀF)/n`` (float64), an intercept column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import RLIF, Edge, Encoding, FloatWeights, Input, Linear, Output, Ticket
from ..ir.neurons import LI
from .hrsnn import HRSNN

BETA_OUT = np.float32(0.8)
WARMUP = 100


@dataclass(frozen=True)
class Series:
    """A standardised scalar series: input ``x[t]`` and one-step-ahead target ``y[t] = x[t+1]``."""

    name: str
    x: np.ndarray  # (T,)
    y: np.ndarray  # (T,)


def digits(split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; x as ``(8 steps, batch, 8)`` float32 rows, pixels/16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    order = np.random.default_rng(split_seed).permutation(len(x))
    cut = int(0.8 * len(x))
    tr, te = order[:cut], order[cut:]
    rows = np.transpose(x, (1, 0, 2))  # (8, N, 8)
    return rows[:, tr], d.target[tr], rows[:, te], d.target[te]


def lorenz(steps: int = 2000) -> Series:
    from scipy.integrate import solve_ivp

    def f(t: float, s: np.ndarray) -> list[float]:
        x, y, z = s
        return [10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z]

    dt, skip = 0.02, 500
    t = np.arange(steps + skip + 1) * dt
    sol = solve_ivp(f, (0, t[-1]), [1.0, 1.0, 1.0], t_eval=t, rtol=1e-9, atol=1e-9)
    return _series("lorenz63", sol.y[0][skip:])


def mackey_glass(steps: int = 2000, tau: float = 17.0, h: float = 0.1) -> Series:
    lag, per = int(round(tau / h)), int(round(1 / h))
    total = (steps + 1 + 500) * per
    x = np.empty(total + lag)
    x[: lag + 1] = 1.2  # the constant history and the initial value
    for i in range(lag, total + lag - 1):
        xd = x[i - lag]
        x[i + 1] = x[i] + h * (0.2 * xd / (1 + xd**10) - 0.1 * x[i])
    return _series("mackey_glass", x[lag::per][500:])


def _series(name: str, v: np.ndarray) -> Series:
    v = (v - v.mean()) / v.std()
    return Series(name, v[:-1].astype(np.float32), v[1:].astype(np.float32))


def ridge(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(out, n)`` and intercepts ``(out,)`` of the ridge fit of ``y`` ``(N, out)`` on ``f`` ``(N, n)``."""
    a = np.hstack([f, np.ones((len(f), 1))]).astype(np.float64)
    g = a.T @ a
    lam = 1e-3 * np.trace(g) / len(g)
    coef = np.linalg.solve(g + lam * np.eye(len(g)), a.T @ y)
    return coef[:-1].T, coef[-1]


def ticket(net: HRSNN, w_out: np.ndarray, b_out: np.ndarray, beta_out: float, timesteps: int,
           name: str = "hrsnn") -> Ticket:
    """The network with its readout as a ticket (spike-train encoding: graded input per step)."""
    n, n_in, out = net.n, net.w_in.shape[1], len(b_out)
    nodes = (Input("in", shape=(n_in,)),
             Linear("w_in", FloatWeights(np.ones(net.w_in.shape, bool), net.w_in.astype(np.float32))),
             Linear("w_rec", FloatWeights(net.w_rec != 0, net.w_rec.astype(np.float32))),
             RLIF(name, shape=(n,), beta=net.beta, threshold=net.threshold, reset="subtract_delayed"),
             Linear("readout", FloatWeights(np.ones(np.shape(w_out), bool), np.asarray(w_out, np.float32)),
                    bias=np.asarray(b_out, np.float32)),
             LI("li", shape=(out,), beta=np.float32(beta_out)), Output("out"))
    edges = (Edge("in", "w_in"), Edge("w_in", name), Edge("w_rec", name), Edge(name, "w_rec", recurrent=True),
             Edge(name, "readout"), Edge("readout", "li"), Edge("li", "out"))
    return Ticket(nodes, edges, timesteps, Encoding("spikes"), {"model": "HRSNN (slt_deploy.lnp)"})
