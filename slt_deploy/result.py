"""What every target returns from a run, built in one place, and the run-time input checks shared by all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SltInputError
from .ir.graph import Ticket
from .ratecode import RateCoder
from .untrusted import check_float32_range


@dataclass(frozen=True)
class Diagnostics:
    """What a target reports about a run besides its values (every field optional).

    - ``conversion``: the fixed-point conversion report (Lava, fixed-point reference), per layer
      the integers chosen and what is exact (:mod:`slt_deploy.fixed_point`).
    - ``saturation``: layer -> how many state values were clipped or wrapped during the run.
    - ``slow_path_sums``: how many synaptic sums needed the exact slow path (:mod:`slt_deploy.exact`).
    - ``kernels``: synapse layer -> kernel the CPU runtime chose.
    - ``notes``: anything else a user should read (one line each).
    """

    conversion: Mapping[str, Any] | None = None
    saturation: Mapping[str, int] | None = None
    slow_path_sums: int | None = None
    kernels: Mapping[str, str] | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("conversion", self.conversion), ("saturation", self.saturation),
                                  ("slow_path_sums", self.slow_path_sums), ("kernels", self.kernels),
                                  ("notes", list(self.notes))) if v not in (None, [])}


@dataclass
class Result:
    """Outcome of running a ticket on a batch (build it with :func:`build_result`).

    - ``output``: ``(T, batch, *out)`` per-step values of the output node (0/1 spikes for a
      spiking output, membrane potential for an LI readout).
    - ``spikes``: ``output`` when the output is spiking (a LIF layer, possibly seen through
      Flatten/MaxPool), else ``None``.
    - ``counts``: ``(batch, *out)`` spike counts over T (or the summed LI membrane).
    - ``layers``: node name -> ``(T, batch, *shape)`` per-step outputs of every node when the run
      was asked to ``record`` (the energy model and ``slt verify`` read them); else the output only.
    - ``spike_counts``: LIF layer name -> ``(T,)`` total spikes per step over the batch (int64).
    - ``diagnostics``: :class:`Diagnostics` (conversion report, saturation, slow-path sums, ...).
    """

    output: np.ndarray
    spiking: bool
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    spike_counts: dict[str, np.ndarray] = field(default_factory=dict)
    target: str = ""
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

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


@dataclass(frozen=True)
class OutputInfo:
    """What a result needs to know about the network: output node, whether it spikes, its LIF layers."""

    output_name: str
    spiking: bool
    lif_names: tuple[str, ...]

    @classmethod
    def of(cls, ticket: Ticket) -> OutputInfo:
        from .ir.neurons import LIF

        return cls(ticket.output.name, ticket.output_is_spiking,
                   tuple(n.name for n in ticket.nodes if isinstance(n, LIF)))


def build_result(info: OutputInfo | Ticket, target: str, values: Mapping[str, np.ndarray], record: bool = True,
                 spike_counts: Mapping[str, np.ndarray] | None = None,
                 diagnostics: Diagnostics | None = None) -> Result:
    """The one constructor of :class:`Result` used by every target.

    ``values``: node name -> ``(T, batch, *shape)`` for every node the target recorded; it must
    hold the output node. ``spike_counts`` (LIF layer -> ``(T,)``) is computed from ``values``
    where not given (a target that does not keep a layer's spikes passes its counts).
    ``record=False`` keeps only the output in ``Result.layers``.
    """
    if isinstance(info, Ticket):
        info = OutputInfo.of(info)
    output = values[info.output_name]
    counts: dict[str, np.ndarray] = {}
    for name in info.lif_names:
        if spike_counts is not None and name in spike_counts:
            counts[name] = np.asarray(spike_counts[name], dtype=np.int64)
        elif name in values:
            layer = values[name]
            counts[name] = layer.reshape(layer.shape[0], -1).sum(axis=1, dtype=np.int64)  # exact past 2^24
    layers = dict(values) if record else {info.output_name: output}
    return Result(output=output, spiking=info.spiking, layers=layers, spike_counts=counts, target=target,
                  diagnostics=diagnostics or Diagnostics())


def stack_steps(recorded: Mapping[str, Iterable[Any]]) -> dict[str, np.ndarray]:
    """``{node: [step arrays]}`` -> ``{node: (T, ...) array}`` for the nodes that recorded anything."""
    out = {}
    for name, steps in recorded.items():
        steps = list(steps)
        if steps:
            out[name] = np.stack(steps)
    return out


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
    check_float32_range(x)
    if kind == "rate" and (x.min() < 0 or x.max() > 1):
        raise SltInputError("rate-coded input must lie in [0, 1] (firing probability per step)")
    return x


def encode_step(ticket: Ticket, x: np.ndarray, t: int, coder: RateCoder | None, dtype: type) -> np.ndarray:
    """The input values of step ``t`` (see :mod:`slt_deploy.ir.graph` for the encodings);
    ``coder``: :func:`rate_coder` of the same ``x`` for a rate-coded ticket."""
    kind = ticket.encoding.kind
    if kind == "direct":
        return x.astype(dtype)
    if kind == "spikes":
        return x[t].astype(dtype)
    assert coder is not None
    return coder.step(t).astype(dtype)


def rate_coder(ticket: Ticket, x: np.ndarray) -> RateCoder | None:
    """The rate code of the checked batch ``x`` (:class:`slt_deploy.ratecode.RateCoder`), or None
    for other encodings. Each sample's spikes depend only on the sample, the seed and the step."""
    if ticket.encoding.kind != "rate":
        return None
    return RateCoder.of(ticket.encoding, x)
