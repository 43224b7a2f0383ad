"""Target board profiles and the flash/RAM measurement of generated C code.

Sizes come from compiling the generated file for the board's core with
``arm-none-eabi-gcc -Os -c`` and reading ``arm-none-eabi-size -A`` (flash = .text +
.rodata + .data initialisers; RAM = .data + .bss, including one ``NAME_state``), plus the
stack of the deepest call chain from ``-fstack-usage``. Without the cross compiler the
figures are estimated from the tables and buffers, and the report says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slt_deploy.errors import SltError

M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
M7F = ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16")
KIB = 1024


@dataclass(frozen=True)
class Board:
    name: str
    flash: int
    ram: int
    cflags: tuple[str, ...]
    example: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "flash_bytes": self.flash, "ram_bytes": self.ram, "cflags": " ".join(self.cflags),
                "example": self.example}


BOARDS = {
    "cortex-m4-256k": Board(
        "cortex-m4-256k", 256 * KIB, 64 * KIB, M4F,
        "ST STM32F401CC (Cortex-M4F, 84 MHz): 256 KiB flash, 64 KiB SRAM (ST datasheet DS9716, STM32F401xB/xC)"),
    "cortex-m7-1m": Board(
        "cortex-m7-1m", 1024 * KIB, 320 * KIB, M7F,
        "ST STM32F746NG (Cortex-M7F, 216 MHz; 32F746GDISCOVERY kit): 1 MiB flash, 320 KiB SRAM incl. 64 KiB "
        "DTCM (ST datasheet DS10916, STM32F745xx/STM32F746xx)"),
}

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)


def _parse_size(text: str, what: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise SltError(f"--board: cannot read {what} size {text!r}; write e.g. {what}=256k or {what}=1m")
    unit = (m.group(2) or "b").lower()
    mult = {"b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": KIB * KIB, "mb": KIB * KIB, "mib": KIB * KIB}[unit]
    return int(m.group(1)) * mult


def board_profile(spec: str) -> Board:
    """A named profile, or a user-defined ``flash=SIZE,ram=SIZE`` (sizes in bytes, k or m; Cortex-M4F flags)."""
    if spec in BOARDS:
        return BOARDS[spec]
    if "=" in spec:
        fields: dict[str, str] = {}
        for part in spec.split(","):
            key, _, value = part.partition("=")
            fields[key.strip().lower()] = value.strip()
        unknown = set(fields) - {"flash", "ram"}
        if unknown or not {"flash", "ram"} <= set(fields):
            raise SltError(f"--board {spec!r}: give both flash=SIZE and ram=SIZE (e.g. flash=512k,ram=128k)")
        return Board(f"custom(flash={fields['flash']},ram={fields['ram']})", _parse_size(fields["flash"], "flash"),
                     _parse_size(fields["ram"], "ram"), M4F, "user-defined profile (sizes measured for Cortex-M4F)")
    raise SltError(f"unknown board {spec!r}; choose one of {', '.join(BOARDS)} or give flash=SIZE,ram=SIZE")


def cross_compiler() -> tuple[str, str] | None:
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    return (gcc, size) if gcc and size else None


class SizeMeasurementError(SltError):
    """The cross compiler is there but could not build the generated code (e.g. no C library headers)."""


def measure(folder: Path, prefix: str, cflags: tuple[str, ...] = M4F) -> dict[str, Any] | None:
    """Compile ``prefix``.c for Cortex-M and return flash/RAM/stack bytes, or None without a cross compiler.

    A cross compiler that fails (Debian's gcc-arm-none-eabi without libnewlib-arm-none-eabi has no
    ``string.h``) raises :class:`SizeMeasurementError`; the exporter then reports estimated sizes
    and says why, and still writes the C files.
    """
    tools = cross_compiler()
    if tools is None:
        return None
    gcc, size = tools
    with tempfile.TemporaryDirectory(prefix="slt-c-size-") as tmp:
        t = Path(tmp)
        (t / "state_instance.c").write_text(f'#include "{prefix}.h"\n{prefix}_state {prefix}_instance;\n')
        flags = [*cflags, "-std=c99", "-Os", "-ffp-contract=off", "-fstack-usage", "-I", str(folder), "-c"]
        objs = []
        for src, obj in ((folder / f"{prefix}.c", t / f"{prefix}.o"), (t / "state_instance.c", t / "state.o")):
            try:
                proc = subprocess.run([gcc, *flags, str(src), "-o", str(obj)], capture_output=True, text=True,
                                      cwd=tmp, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SizeMeasurementError(f"arm-none-eabi-gcc could not run: {exc}") from None
            if proc.returncode:
                lines = (proc.stderr or proc.stdout).strip().splitlines() or [f"exit status {proc.returncode}"]
                first = next((ln for ln in lines if "error" in ln), lines[0])
                raise SizeMeasurementError(f"arm-none-eabi-gcc failed on the generated code: {first}")
            objs.append(obj)
        sections: dict[str, int] = {}
        for obj in objs:
            try:
                out = subprocess.run([size, "-A", str(obj)], capture_output=True, text=True, check=True,
                                     timeout=60).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                raise SizeMeasurementError(f"arm-none-eabi-size failed: {exc}") from None
            for line in out.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
                    sections[parts[0]] = sections.get(parts[0], 0) + int(parts[1])
        text = sum(v for k, v in sections.items() if k.startswith(".text"))
        rodata = sum(v for k, v in sections.items() if k.startswith(".rodata"))
        data = sum(v for k, v in sections.items() if k.startswith(".data"))
        bss = sum(v for k, v in sections.items() if k.startswith(".bss") or k == "COMMON")
        stack = _stack_bound(t / f"{prefix}.su", prefix)
        version = subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True).stdout.strip()
    return {"text": text, "rodata": rodata, "data": data, "bss": bss, "stack": stack,
            "flash": text + rodata + data, "ram": data + bss + stack,
            "tool": f"arm-none-eabi-gcc {version} {' '.join(cflags)} -Os -c; arm-none-eabi-size -A"}


def _stack_bound(su: Path, prefix: str) -> int:
    """Stack of NAME_infer -> run_step -> the two deepest helpers (an upper bound of the call chain)."""
    usage: dict[str, int] = {}
    if su.exists():
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                usage[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
    top = usage.get(f"{prefix}_infer", 0) + usage.get("run_step", 0)
    others = sorted((v for k, v in usage.items() if k not in (f"{prefix}_infer", "run_step", f"{prefix}_step",
                                                              f"{prefix}_reset")), reverse=True)
    return top + sum(others[:2])


def estimate(info: dict[str, Any], state_bytes: int, n_nodes: int,
             why: str = "arm-none-eabi-gcc not found") -> dict[str, Any]:
    """Flash/RAM estimated from the tables and buffers (no usable cross compiler: ``why``)."""
    code = 1200 + 220 * n_nodes
    stack = 96 + 8 * int(info.get("acc_limbs", 0))
    return {"text": code, "rodata": info["tables_bytes"], "data": 0, "bss": state_bytes, "stack": stack,
            "flash": code + info["tables_bytes"], "ram": state_bytes + stack,
            "tool": f"estimate from the tables and buffers ({why})"}
