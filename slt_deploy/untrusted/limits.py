"""Run limits: the memory a run will need, estimated before it starts.

For a ticket with T steps, a batch of B samples and per-step node outputs of sizes ``n_v``
(``ticket.shapes``), a run keeps

    state  = 4 x 8 x B x sum_v n_v                       (values, membranes, temporaries; float64)
    kept   = 16 x T x B x sum_{v in K} n_v              (per-step arrays kept to the end, and their stacked copy)
    input  = 16 x T x B x n_input                       (spike trains / rate codes: one array per step)

bytes, where ``K`` is every node when the run records its layers, else the neuron layers (spike
counts) and the output. ``estimate <= limit`` is required before the run starts; the limit is
``max_memory`` (``slt run --max-memory``), else ``SLT_MAX_MEMORY``, else
``min(8 GiB, 3/4 of physical memory)``. A valid 16 KB ticket with T = 10^6 segfaulted ``slt run``
at about 8 GiB and T = 10^5 raised an untyped memory error; now both are one line naming the flag.

Measured (examples/digits-mlp-imp-binary.slt with T = 20,000, batch 64, record=False; estimate
2,892 MiB): peak RSS reference 237 MiB, cpu 525 MiB, torch 522 MiB, onnxruntime 2,017 MiB
(ONNX Runtime stacks the Loop's outputs and copies them), each including ~130 MiB of imports.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from ..errors import SltInputError

MAX_MEMORY_ENV = "SLT_MAX_MEMORY"
DEFAULT_CAP = 8 << 30
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_bytes(text: str | int, flag: str = "--max-memory") -> int:
    """``"512M"``, ``"16G"``, ``"1.5GiB"`` or a plain byte count as bytes (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise SltInputError(f"{flag} {text!r}: give a size such as 512M, 16G or a number of bytes")
        value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 1:
        raise SltInputError(f"{flag} {text!r}: the limit must be positive")
    return value


def default_limit() -> int:
    """``SLT_MAX_MEMORY`` if set, else min(8 GiB, 3/4 of the machine's physical memory)."""
    env = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if env:
        return parse_bytes(env, MAX_MEMORY_ENV)
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_CAP
    return min(DEFAULT_CAP, physical * 3 // 4) if physical > 0 else DEFAULT_CAP


def run_bytes(ticket: Any, batch: int, record: bool) -> int:
    """The estimate of the module docstring (Python ints: no overflow)."""
    T = int(ticket.timesteps)
    sizes = {name: math.prod(shape) for name, shape in ticket.shapes.items()}
    total = sum(sizes.values())
    if record:
        kept = total
    else:
        neurons = sum(sizes.get(n.name, 0) for n in ticket.neuron_layers())
        kept = neurons + math.prod(ticket.output_shape)
    per_step_input = math.prod(ticket.input_shape) if ticket.encoding.kind != "direct" else 0
    return 32 * batch * total + 16 * T * batch * (kept + per_step_input)


def fmt_bytes(n: int) -> str:
    """``n`` bytes in binary units, one decimal."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_run_memory(ticket: Any, batch: int, record: bool, limit: int | str | None = None,
                     flag: str = "--max-memory") -> int:
    """Refuse a run whose estimate exceeds the limit (see the module doc); returns the estimate."""
    cap = default_limit() if limit is None else parse_bytes(limit, flag)
    need = run_bytes(ticket, batch, record)
    if need > cap:
        raise SltInputError(
            f"this run needs about {fmt_bytes(need)} (T={ticket.timesteps} x batch {batch} x "
            f"{sum(math.prod(s) for s in ticket.shapes.values()):,} values per step), above the "
            f"{fmt_bytes(cap)} limit; "
            f"raise it with {flag} or {MAX_MEMORY_ENV}, or run a smaller batch or fewer time steps")
    return need
