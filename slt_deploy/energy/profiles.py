"""Energy profiles: per-operation and per-memory-access energies, each with its source.

A profile is a TOML file (read with :mod:`tomllib`)::

    schema = "slt-energy-profile/1"          # optional
    name = "my-chip"
    description = "..."                      # optional
    state_bits = 32                          # bits per membrane / activation in memory (default 32)

    [constants.ac]                           # required: ac, mac, neuron_active, neuron_inactive
    pj = 0.9                                 # picojoules, finite and >= 0
    source = "where the number comes from"   # required, non-empty
    # optional: [constants.spike] (energy per spike sent)

    [[memory]]                               # optional; ascending max_bytes, the last without
    name = "SRAM 8 KB"                       # max_bytes (unbounded, e.g. DRAM)
    max_bytes = 8192
    pj_per_64bit = 10.0
    source = "..."

Energy of reading or writing ``n`` bytes held in an array of ``A`` bytes:
``ceil(n / 8) · E_64(level(A))`` where ``level(A)`` is the first level with ``max_bytes ≥ A``.
The built-in profiles live in ``slt_deploy/energy/profiles/*.toml``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SltProfileError

REQUIRED = ("ac", "mac", "neuron_active", "neuron_inactive")
OPTIONAL = ("spike",)
BUILTIN = ("cmos45-fp32", "cmos45-fp16", "cmos45-int8", "cmos45-int32", "loihi")
MAX_PROFILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Constant:
    """One energy value in picojoules and where it comes from."""

    pj: float
    source: str


@dataclass(frozen=True)
class MemoryLevel:
    """A memory array class: energy per 64-bit access for arrays up to ``max_bytes`` (None: any size)."""

    name: str
    max_bytes: int | None
    pj_per_64bit: float
    source: str


@dataclass(frozen=True)
class Profile:
    """A validated energy profile (see module docstring)."""

    name: str
    description: str
    origin: str
    constants: dict[str, Constant]
    memory: tuple[MemoryLevel, ...] = ()
    state_bits: int = 32

    def pj(self, key: str) -> float:
        """Energy of constant ``key`` (0 for an absent optional constant)."""
        c = self.constants.get(key)
        return c.pj if c is not None else 0.0

    def level(self, array_bytes: int) -> MemoryLevel | None:
        """The memory level holding an array of ``array_bytes`` (None: the profile has no memory model)."""
        for lvl in self.memory:
            if lvl.max_bytes is None or array_bytes <= lvl.max_bytes:
                return lvl
        return None

    def access_pj(self, nbytes: float, array_bytes: int) -> float:
        """``ceil(nbytes / 8) · E_64`` of the level holding ``array_bytes``; 0 without memory levels."""
        lvl = self.level(array_bytes)
        return 0.0 if lvl is None else math.ceil(nbytes / 8) * lvl.pj_per_64bit

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "origin": self.origin, "state_bits": self.state_bits,
            "constants": {k: {"pj": c.pj, "source": c.source} for k, c in self.constants.items()},
            "memory": [{"name": m.name, "max_bytes": m.max_bytes, "pj_per_64bit": m.pj_per_64bit, "source": m.source}
                       for m in self.memory],
        }


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SltProfileError(f"{where} must be a number of picojoules, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise SltProfileError(f"{where} must be finite and >= 0, got {value!r}")
    return float(value)


def _source(entry: dict[str, Any], where: str) -> str:
    src = entry.get("source")
    if not isinstance(src, str) or not src.strip():
        raise SltProfileError(f"{where} needs a 'source' string saying where the number comes from")
    return src.strip()


def _constant(data: dict[str, Any], key: str, where: str) -> Constant:
    entry = data[key]
    if not isinstance(entry, dict) or "pj" not in entry:
        raise SltProfileError(f"{where}: constants.{key} needs 'pj' (picojoules) and 'source'")
    return Constant(_number(entry["pj"], f"{where}: constants.{key}.pj"), _source(entry, f"{where}: constants.{key}"))


def _memory(levels: Any, where: str) -> tuple[MemoryLevel, ...]:
    if not isinstance(levels, list) or not all(isinstance(m, dict) for m in levels):
        raise SltProfileError(f"{where}: 'memory' must be an array of tables ([[memory]])")
    out: list[MemoryLevel] = []
    for i, m in enumerate(levels):
        w = f"{where}: memory[{i}]"
        cap = m.get("max_bytes")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise SltProfileError(f"{w}.max_bytes must be a positive integer, got {cap!r}")
        if out and (out[-1].max_bytes is None or (cap is not None and cap <= out[-1].max_bytes)):
            raise SltProfileError(f"{w}: levels must have increasing max_bytes, only the last may omit it")
        if "pj_per_64bit" not in m:
            raise SltProfileError(f"{w} needs 'pj_per_64bit'")
        out.append(MemoryLevel(str(m.get("name", f"level {i}")), cap, _number(m["pj_per_64bit"], f"{w}.pj_per_64bit"),
                               _source(m, w)))
    if out and out[-1].max_bytes is not None:
        raise SltProfileError(f"{where}: the last memory level must omit max_bytes (it holds arrays of any size)")
    return tuple(out)


def parse_profile(data: dict[str, Any], origin: str) -> Profile:
    """Validate a parsed TOML document; every problem is a one-line :class:`SltProfileError`."""
    consts = data.get("constants")
    if not isinstance(consts, dict):
        raise SltProfileError(f"{origin}: no [constants] table; needs {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if k not in consts]
    if missing:
        raise SltProfileError(f"{origin}: missing constant(s) {', '.join(missing)} (each needs 'pj' and 'source')")
    unknown = sorted(set(consts) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise SltProfileError(f"{origin}: unknown constant(s) {', '.join(unknown)}; known: "
                              f"{', '.join(REQUIRED + OPTIONAL)}")
    constants = {k: _constant(consts, k, origin) for k in REQUIRED + OPTIONAL if k in consts}
    bits = data.get("state_bits", 32)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 64:
        raise SltProfileError(f"{origin}: state_bits must be an integer in [1, 64], got {bits!r}")
    name = data.get("name", Path(origin).stem)
    if not isinstance(name, str) or not name:
        raise SltProfileError(f"{origin}: 'name' must be a non-empty string")
    return Profile(name=name, description=str(data.get("description", "")), origin=origin, constants=constants,
                   memory=_memory(data.get("memory", []), origin), state_bits=bits)


def _parse_text(text: str, origin: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SltProfileError(f"{origin}: not valid TOML ({exc})") from None
    return parse_profile(data, origin)


def builtin_profile(name: str) -> Profile:
    """One of :data:`BUILTIN`."""
    if name not in BUILTIN:
        raise SltProfileError(f"unknown energy profile {name!r}; built-in: {', '.join(BUILTIN)}, or a .toml file")
    text = resources.files(__package__).joinpath("profiles", f"{name}.toml").read_text(encoding="utf-8")
    return _parse_text(text, f"built-in:{name}")


def load_profile(spec: str | Path | Profile) -> Profile:
    """A built-in profile by name, a user profile from a TOML file path, or a :class:`Profile` as is."""
    if isinstance(spec, Profile):
        return spec
    text_spec = str(spec)
    if isinstance(spec, str) and spec in BUILTIN:
        return builtin_profile(spec)
    if not text_spec.strip():  # Path("") is the current folder
        raise SltProfileError(f"unknown energy profile {text_spec!r}; built-in: {', '.join(BUILTIN)}, or a .toml file")
    path = Path(spec)
    try:
        exists = path.exists()
    except OSError:  # a name too long for the file system, ...: not a file
        exists = False
    if not (isinstance(spec, Path) or text_spec.endswith(".toml") or exists):
        raise SltProfileError(f"unknown energy profile {text_spec!r}; built-in: {', '.join(BUILTIN)}, or a .toml file")
    from ..untrusted import read_bounded

    if not exists:
        raise SltProfileError(f"{path}: no such profile file")
    data = read_bounded(path, MAX_PROFILE_BYTES, error=SltProfileError, what="a profile (1 MiB at most)")
    try:  # /dev/zero or a FIFO is refused above: only a regular file is read, at most its own size
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SltProfileError(f"{path}: cannot read profile ({type(exc).__name__})") from None
    return _parse_text(text, str(path))
