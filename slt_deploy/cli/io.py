"""What every `slt` command shares: the console, one-line user errors, JSON output, reading inputs.

Output for people goes through :data:`console` (rich). When stdout is not a terminal (a pipe, a
file, a test runner) nothing is wrapped or cut: tables print at their natural width. In a
terminal, table cells fold instead of being truncated with an ellipsis.
"""

from __future__ import annotations

import functools
import io as _io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..errors import SltError

F = TypeVar("F", bound=Callable[..., Any])
MAX_INPUT_BYTES = 4 << 30
_UNBOUNDED = 100_000  # "no width limit" for output that is not a terminal


def _console() -> Console:
    interactive = sys.stdout.isatty()
    return Console(width=None if interactive else _UNBOUNDED, soft_wrap=not interactive)


console = _console()


def table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells fold rather than end in '…' when the terminal is narrow."""
    t = Table(title=title)
    for h in headers:
        t.add_column(h, overflow="fold")
    return t


def user_errors(fn: F) -> F:
    """Turn :class:`SltError` into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SltError as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> None:
    """Print ``slt: error: message`` on stderr and exit with status 2."""
    print(f"slt: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def emit_json(payload: Any) -> None:
    """Print machine-readable output (numpy scalars and arrays converted)."""
    print(json.dumps(payload, indent=2, default=json_default))


def json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_npy(path: Path, flag: str = "--input") -> np.ndarray:
    """Read a user's .npy array without pickles, header checked before allocation
    (:func:`slt_deploy.untrusted.load_npy`); every failure is an :class:`SltInputError` naming ``flag``."""
    from ..untrusted import load_npy as load_untrusted

    return load_untrusted(path, flag, limit=MAX_INPUT_BYTES)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz next to ``path`` and rename it into place."""
    from ..atomic import atomic_write_bytes

    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def parse_shape(text: str, flag: str = "--input-shape") -> tuple[int, ...]:
    """``'1,28,28'`` (or ``1x28x28``) -> ``(1, 28, 28)``; one-line error naming ``flag`` otherwise."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise SltError(f"{flag} {text!r}: expected comma-separated positive integers, e.g. 1,28,28")
    return shape


def fmt(value: float | None, spec: str) -> str:
    """Format a ratio that is None when its denominator is zero (an all-pruned layer)."""
    return "-" if value is None else format(value, spec)
