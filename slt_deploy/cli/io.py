"""What every `slt` command shares: the console, one-line user errors, JSON output, reading inputs.

Output for people goes through :data:`console` (rich). When stdout is not a terminal (a pipe, a
file, a test runner) nothing is wrapped or cut: tables print at their natural width. In a
terminal, table cells fold instead of being truncated with an ellipsis.
"""

from __future__ import annotations

import functools
import io as _io
import json
import os
import re
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
    """Turn :class:`SltError` (and an ``OSError`` about a path the user gave) into one line on stderr
    and exit status 2 (no traceback), naming the option whose value the message is about
    (:func:`name_the_flag`)."""
    flags = option_flags(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SltError as exc:
            message = str(exc) or type(exc).__name__
            first = re.match(r"([a-z_]+)\b", message)
            if first and first.group(1) in flags:  # "input_frac_bits must be ...": the Python name of an option
                fail(f"{flags[first.group(1)]}: {message}")
            fail(name_the_flag(message, {flags[k]: v for k, v in kwargs.items() if k in flags}))
        except OSError as exc:  # the file system refused a path the user gave (too long, a loop, read-only, ...)
            where = f": '{os.fsdecode(exc.filename)}'" if exc.filename is not None else ""
            fail(name_the_flag(f"{exc.strerror or type(exc).__name__}{where}",
                               {flags[k]: v for k, v in kwargs.items() if k in flags}))

    return wrapper  # type: ignore[return-value]


def option_flags(fn: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> its flags (``-o/--output``) for every ``typer.Option`` of a command function."""
    import inspect

    from typer.models import OptionInfo

    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if isinstance(p.default, OptionInfo):
            decls = [d for d in (p.default.param_decls or ()) if d.startswith("-")]
            out[name] = "/".join(decls) or "--" + name.replace("_", "-")
    return out


def name_the_flag(message: str, given: dict[str, Any]) -> str:
    """``message`` led by the flag of the option whose value it quotes, e.g. ``-o/--output: cannot
    write '/proc/x': ...``, unless it starts with a flag or names that flag already. ``given``: flags
    -> values. Of several options whose values appear (quoted, as ``repr`` shows it, after ``=``, or
    a path of at least 4 characters), the longest wins."""
    flags = [f for spelled in given for f in spelled.split("/")]
    if any(message.startswith(f + c) for f in flags for c in " :="):
        return message
    best: tuple[int, str] | None = None
    for flag, value in given.items():
        if value is None or isinstance(value, bool):
            continue
        text = os.fsdecode(os.fspath(value)) if isinstance(value, os.PathLike) else str(value)
        full = os.path.abspath(text) if isinstance(value, os.PathLike) else text
        found = any(q in message for q in (f"'{text}'", f"'{full}'", repr(text), repr(text.strip()), f"={text}"))
        if len(text) >= 4 and (os.sep in text or "." in text):  # a path, unquoted
            found = found or text in message or full in message
        if found and (best is None or len(text) > best[0]):
            best = (len(text), flag)
    if best is None or any(f in message for f in best[1].split("/") if f.startswith("--")):
        return message
    return f"{best[1]}: {message}"


_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def fail(message: str) -> None:
    """Print ``slt: error: message`` on stderr (one line: control characters, such as a newline in a
    file name the message quotes, are escaped) and exit with status 2."""
    print(f"slt: error: {message.strip().translate(_CONTROL)}", file=sys.stderr)
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
