"""Lyapunov spectrum by the QR method (Benettin et al. 1980; Eckmann & Ruelle 1985).

Along a trajectory ``x[t+1] = f(x[t])`` with Jacobians ``J_t = ∂f/∂x (x[t])``, keep an
orthonormal frame ``Q``: at every step ``J_t · Q = Q' · R`` (QR factorisation, the sign of
``R``'s diagonal made positive), then ``Q ← Q'``. The exponents are the time averages

    λ_i = (1/n) Σ_t log R_t[i, i]      (per step; i = 1 … k, largest first)

after ``warmup`` steps that only align the frame. ``k`` (default: all) gives the leading
part of the spectrum. A zero diagonal entry (a singular Jacobian, e.g. a silent neuron with
no leak) contributes ``log(tiny)``; the result is clipped at ``floor`` per step so that one
such step does not make the average −inf.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def spectrum(jacobians: Iterable[np.ndarray], k: int | None = None, warmup: int = 0,
             floor: float = -50.0) -> np.ndarray:
    """The ``k`` leading Lyapunov exponents (per step, descending) of a sequence of Jacobians."""
    q: np.ndarray | None = None
    total: np.ndarray | None = None
    steps = 0
    for t, jac in enumerate(jacobians):
        jac = np.asarray(jac, np.float64)
        if q is None:
            n = jac.shape[0]
            q = np.eye(n, min(k or n, n))
        q, r = np.linalg.qr(jac @ q)
        d = np.diag(r)
        signs = np.where(d < 0, -1.0, 1.0)
        q = q * signs
        if t < warmup:
            continue
        logs = np.maximum(np.log(np.maximum(np.abs(d), 1e-300)), floor)
        total = logs if total is None else total + logs
        steps += 1
    if total is None or steps == 0:
        raise ValueError("no Jacobians after the warm-up: give more steps than warmup")
    return np.sort(total / steps)[::-1]


def henon_jacobians(steps: int, a: float = 1.4, b: float = 0.3, x0: tuple[float, float] = (0.1, 0.1)):
    """Jacobians of the Hénon map ``(x, y) -> (1 − a·x² + y, b·x)`` along its orbit from ``x0``."""
    x, y = x0
    for _ in range(steps):
        yield np.array([[-2.0 * a * x, 1.0], [b, 0.0]])
        x, y = 1.0 - a * x * x + y, b * x
