"""What every target returns from a run, and the checks on run-time input shared by all."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import SltInputError
from .ir.graph import Ticket


@dataclass
class Result:
    """Outcome of running a ticket on a batch.

    - ``output``: ``(T, batch, *out)`` per-step values of the output node (0/1 spikes for a
      spiking output layer, membrane potential for an LI readout).
    - ``spikes``: ``output`` when the output layer spikes, else ``None``.
    - ``counts``: ``(batch, *out)`` spike counts over T (or the summed LI membrane).
    - ``layers``: node name -> ``(T, batch, *shape)`` per-step outputs of every node the
      target recorded (the reference records all; the energy model reads them).
    - ``spike_counts``: neuron-layer name -> ``(T,)`` total spikes per step over the batch.
    """

    output: np.ndarray
    spiking: bool
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    spike_counts: dict[str, np.ndarray] = field(default_factory=dict)
    target: str = "reference"

    @property
    def spikes(self) -> np.ndarray | None:
        return self.output if self.spiking else None

    @property
    def counts(self) -> np.ndarray:
        return self.output.sum(axis=0)

    def predictions(self) -> np.ndarray:
        """Class per sample: argmax of ``counts`` over the flattened output."""
        c = self.counts.reshape(self.counts.shape[0], -1)
        return np.argmax(c, axis=1)


def check_input(ticket: Ticket, x: np.ndarray) -> np.ndarray:
    """Validate run-time input against the ticket; returns it as a float64 array.

    Direct and rate encodings take ``(batch, *input)``; spike trains ``(T, batch, *input)``.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - any conversion failure is a user error here
            raise SltInputError(f"input cannot be converted to an array: {exc}") from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise SltInputError(f"input dtype {x.dtype} is not numeric; give float, int or bool values")
    if np.iscomplexobj(x):
        raise SltInputError("input is complex; give real values")
    shape = ticket.input_shape
    kind = ticket.encoding.kind
    lead = 2 if kind == "spikes" else 1
    want = ("T", "batch", *shape) if kind == "spikes" else ("batch", *shape)
    if x.ndim != lead + len(shape) or tuple(x.shape[lead:]) != shape:
        raise SltInputError(f"input has shape {x.shape}, the ticket's {kind} input expects {want}")
    if kind == "spikes" and x.shape[0] != ticket.timesteps:
        raise SltInputError(f"input has {x.shape[0]} time steps, the ticket runs T={ticket.timesteps}")
    if x.shape[lead - 1] < 1:
        raise SltInputError("input batch is empty")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise SltInputError("input contains NaN or inf values")
    if kind == "rate" and (x.min() < 0 or x.max() > 1):
        raise SltInputError("rate-coded input must lie in [0, 1] (firing probability per step)")
    return x


def encode_step(ticket: Ticket, x: np.ndarray, t: int, rng: np.random.Generator | None, dtype: type) -> np.ndarray:
    """The input values of step ``t`` (see :mod:`slt_deploy.ir.graph` for the encodings)."""
    kind = ticket.encoding.kind
    if kind == "direct":
        return x.astype(dtype)
    if kind == "spikes":
        return x[t].astype(dtype)
    assert rng is not None
    return (rng.random(x.shape) < x).astype(dtype)


def rate_rng(ticket: Ticket) -> np.random.Generator | None:
    """The generator of the rate code: ``Generator(PCG64(seed))``, or None for other encodings."""
    if ticket.encoding.kind != "rate":
        return None
    return np.random.Generator(np.random.PCG64(ticket.encoding.seed))
