"""The ``slt`` command line: a thin layer over the public API, one module per command.

Every reporting command takes ``--json``. User errors (an :class:`~slt_deploy.SltError`, a bad
option or a missing argument) print one line on stderr and exit with status 2, never a
traceback. Target and exporter choices, their options and help come from
:mod:`slt_deploy.registry`.
"""

from __future__ import annotations

import os
import sys

import typer

from .bench import bench
from .demo import demo
from .export import export
from .inspect import inspect
from .io import console, emit_json, load_npy, user_errors
from .pack import pack
from .run import run
from .verify import verify

app = typer.Typer(
    name="slt",
    help="Pack, inspect, run, verify and export sparse binary spiking networks (spiking lottery tickets).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from ..energy.command import energy
    from ..search.command import search

    for name, fn in (("pack", pack), ("inspect", inspect), ("run", run), ("export", export), ("verify", verify),
                     ("energy", energy), ("bench", bench), ("search", search), ("demo", demo)):
        app.command(name)(user_errors(fn))


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``slt`` console script: usage errors are one line on stderr, exit 2."""
    from typer.exceptions import TyperException

    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    _one_line_warnings()
    try:
        code = app(args=argv, prog_name="slt", standalone_mode=False)
    except typer.Abort:
        print("slt: aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # click's usage errors: a missing option, an unknown command, ...
        text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `slt` or `slt run` alone: the help, not an error
            print(text)
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = f"slt {ctx.info_name}" if ctx is not None and ctx.info_name not in (None, "slt") else "slt"
        print(f"slt: error: {text.strip().splitlines()[0] if text.strip() else type(exc).__name__} "
              f"(see '{where} --help')", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _one_line_warnings() -> None:
    """:class:`~slt_deploy.errors.SltWarning` prints as ``slt: warning: ...`` (one line, no source line)."""
    import warnings

    from ..errors import SltWarning

    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        if issubclass(category, SltWarning):
            print(f"slt: warning: {message}", file=sys.stderr)
        else:
            default(message, category, *args, **kwargs)  # type: ignore[arg-type]

    warnings.showwarning = show


__all__ = ["app", "console", "emit_json", "load_npy", "main", "user_errors"]
