"""The value one graph node produces for a batch: per-step rows or one static block."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Value:
    """``data``: ``(T, B, *shape)``, or ``(1, B, *shape)`` with ``static`` (same at every step).

    ``binary``: every entry is 0 or 1 and ``data`` is uint8 (spikes); otherwise float32.
    ``rate_known``: the rows are representative of the run (False for a single step of a
    recurrent block), so a kernel choice may use the measured spike rate.
    """

    data: np.ndarray
    static: bool = False
    binary: bool = False
    rate_known: bool = True

    def steps(self, t0: int, t1: int) -> Value:
        """Steps ``t0:t1`` (a static value is returned as is)."""
        if self.static:
            return self
        return Value(self.data[t0:t1], False, self.binary, self.rate_known)

    def as_float(self) -> np.ndarray:
        return self.data.astype(np.float32) if self.binary else self.data

    def expanded(self, timesteps: int) -> np.ndarray:
        """``(T, B, *shape)`` data (a broadcast view for a static value)."""
        if self.static and self.data.shape[0] != timesteps:
            return np.broadcast_to(self.data, (timesteps, *self.data.shape[1:]))
        return self.data

    @staticmethod
    def zeros_like(v: Value, steps: int = 1) -> Value:
        return Value(np.zeros((steps, *v.data.shape[1:]), v.data.dtype), False, v.binary, v.rate_known)
