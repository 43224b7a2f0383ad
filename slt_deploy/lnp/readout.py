"""Train the readouts of one network on every task and measure it on its exported tickets.

The hidden spikes come from the ticket itself run on the reference simulator (the semantics
by definition); the readout is fitted by ridge regression (:func:`.tasks.ridge`), written
into the ticket, and the ticket's own output is scored. Energy per inference is
:func:`slt_deploy.energy` (NeuroBench convention, 45 nm fp32 profile) of the digits ticket on
the first 64 test samples: recurrent synaptic operations are counted from the previous step's
spikes, and a removed neuron costs nothing (it is not in the ticket).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..registry import REFERENCE
from . import tasks
from .hrsnn import HRSNN

HIDDEN = "hrsnn"


@dataclass
class Scores:
    """What the benchmark reports for one network."""

    accuracy: float
    nrmse: dict[str, float]
    rates: np.ndarray                      # (n,) mean spikes per step on the digits training set
    ticket: Any = None                     # the digits ticket
    slt_bytes: int = 0
    energy_pj: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def hidden_spikes(net: HRSNN, x: np.ndarray) -> np.ndarray:
    """``(T, batch, n)`` spikes of the recurrent layer for graded input ``x`` ``(T, batch, n_in)``."""
    import slt_deploy

    probe = tasks.ticket(net, np.zeros((1, net.n)), np.zeros(1), 0.0, x.shape[0], HIDDEN)
    return slt_deploy.run(probe, x, target=REFERENCE.name, record=True).layers[HIDDEN]


def classify_digits(net: HRSNN, split_seed: int = 0) -> tuple[Any, float, np.ndarray]:
    """Digits ticket, its test accuracy, and the firing rates on the training set."""
    import slt_deploy

    x_tr, y_tr, x_te, y_te = tasks.digits(split_seed)
    s = hidden_spikes(net, x_tr)
    counts = s.sum(axis=0).astype(np.float64)
    w, c = tasks.ridge(counts, np.eye(10)[y_tr])
    T = x_tr.shape[0]
    ticket = tasks.ticket(net, w, c / T, 1.0, T, HIDDEN)
    out = slt_deploy.run(ticket, x_te, target=REFERENCE.name, record=False).output
    acc = float(np.mean(out[-1].argmax(axis=1) == y_te))
    return ticket, acc, s.mean(axis=(0, 1))


def predict_series(net: HRSNN, series: tasks.Series) -> float:
    """NRMSE of the one-step-ahead prediction on the last 30% of ``series`` (the ticket's own output).

    The network keeps its 8 inputs; the scalar series drives input 0 and the others are 0."""
    import slt_deploy

    x = np.zeros((len(series.x), 1, net.w_in.shape[1]), np.float32)
    x[:, 0, 0] = series.x  # the same network: the series drives input channel 0, the others stay 0
    s = hidden_spikes(net, x)[:, 0].astype(np.float64)
    f = np.empty_like(s)
    acc = np.zeros(s.shape[1])
    for t in range(len(s)):
        acc = tasks.BETA_OUT * acc + s[t]
        f[t] = acc
    cut = int(0.7 * len(s))
    w, c = tasks.ridge(f[tasks.WARMUP:cut], series.y[tasks.WARMUP:cut, None].astype(np.float64))
    ticket = tasks.ticket(net, w, c * (1 - float(tasks.BETA_OUT)), float(tasks.BETA_OUT), len(x), HIDDEN)
    pred = slt_deploy.run(ticket, x, target=REFERENCE.name, record=False).output[:, 0, 0].astype(np.float64)
    err = pred[cut:] - series.y[cut:]
    return float(np.sqrt(np.mean(err**2)) / np.std(series.y[cut:]))


def score(net: HRSNN, series: list[tasks.Series], split_seed: int = 0, energy: bool = True) -> Scores:
    """Every task on the same network, the .slt size and the energy per digits inference."""
    import slt_deploy

    ticket, acc, rates = classify_digits(net, split_seed)
    nrmse = {s.name: predict_series(net, s) for s in series}
    scores = Scores(acc, nrmse, rates, ticket)
    scores.slt_bytes = slt_size(ticket)
    if energy:
        _, _, x_te, _ = tasks.digits(split_seed)
        report = slt_deploy.energy(ticket, x_te[:, :64])
        scores.energy_pj = float(report.total())
    return scores


def slt_size(ticket: Any) -> int:
    """Bytes of the ticket written as .slt."""
    import os
    import tempfile

    import slt_deploy

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.slt")
        slt_deploy.save(ticket, path)
        return os.path.getsize(path)


__all__ = ["Scores", "classify_digits", "hidden_spikes", "predict_series", "score", "slt_size"]
