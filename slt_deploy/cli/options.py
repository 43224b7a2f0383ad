"""Target and exporter options on the command line, from the registry.

`slt run` and `slt export` declare one CLI flag per distinct option flag of the registered
targets / exporters (:mod:`slt_deploy.registry`); the help of each flag says which of them take
it. A flag given for a target or format that does not take it is a one-line error naming the flag
and the ones that do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import SltError


def flag_help(flag: str, specs: Mapping[str, Any], selector: str) -> str:
    """The help text of ``flag``: the first declaring option's help, and who takes it."""
    owners = registry.flag_owners(flag, specs)
    opt = next(o for n in owners for o in specs[n].options if o.flag == flag)
    return f"{opt.help[0].upper()}{opt.help[1:]} ({selector} {', '.join(owners)})."


def choices_help(specs: Mapping[str, Any], what: str) -> str:
    """``"what: a, b or c."`` for the --target / --to help (docs/targets.md describes each)."""
    names = list(specs)
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    return f"{what}: {listed}."


def options_from_flags(spec: Any, given: Mapping[str, Any], selector: str) -> dict[str, Any]:
    """Map the CLI flags that were given (value not None/False) to ``spec``'s Python options.

    ``selector`` is the flag that chose ``spec`` (``--target``/``--to``), for the error message.
    Values of ``npy`` options are paths, loaded here as untrusted input.
    """
    from .io import load_npy

    out: dict[str, Any] = {}
    for flag, value in given.items():
        if value is None or value is False:
            continue
        opt = next((o for o in spec.options if o.flag == flag), None)
        if opt is None:
            owners = registry.flag_owners(flag, registry.TARGETS if selector == "--target" else registry.EXPORTERS)
            takes = f" (it applies to {selector} {', '.join(owners)})" if owners else ""
            raise SltError(f"{flag} does not apply to {selector} {spec.name}{takes}")
        if opt.kind == "npy":
            value = load_npy(Path(value), flag)
        out[opt.name] = opt.check(value, f"{selector} {spec.name}")
    return out
