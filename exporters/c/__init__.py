"""C99 exporter for microcontrollers: a ticket becomes ``NAME.h`` + ``NAME.c`` (+ README.md).

    report = export_c(ticket, "out/", prefix="net", arith="float", word=32, board="cortex-m4-256k")

The generated code holds the weights as static const bit-packed tables (or index lists, or
plain values, whichever is smallest per layer) in flash, all state in one statically sized
``NAME_state`` struct (no malloc), and needs only ``<stdint.h>`` and ``<string.h>``. Float mode
reproduces the float32 reference bit for bit (see :mod:`.emit_float` and docs/edge.md);
fixed mode runs the integers of :mod:`slt_deploy.fixed_point` and reproduces its
fixed-point reference exactly (see :mod:`.emit_fixed`).

The report gives flash (.text + .rodata) and RAM (.data + .bss + stack) measured with
``arm-none-eabi-gcc -Os -c`` for Cortex-M when it is installed, else estimated (the
``size_source`` entry says which), and refuses a ``board`` the ticket does not fit.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from slt_deploy.atomic import clean_stale, foreign_entry, replace_folder, temp_prefix
from slt_deploy.errors import SltError, SltUnsupportedError
from slt_deploy.ir.graph import Ticket

from .boards import BOARDS, M4F, SizeMeasurementError, board_profile, estimate, measure

__all__ = ["export_c", "generate", "BOARDS"]

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "main",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


def default_prefix(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.resolve().name).strip("_").lower() or "slt_net"
    if stem[0].isdigit():
        stem = "net_" + stem
    return stem[:40] if stem not in C_KEYWORDS else f"{stem}_net"


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _IDENT.match(prefix) or prefix in C_KEYWORDS:
        raise SltError(f"--prefix {prefix!r} must be a C identifier (letters, digits, _; at most 40; not a keyword)")
    if prefix.startswith("__") or prefix.upper() in ("W_T", "WB", "WSH", "WM", "BIT"):
        raise SltError(f"--prefix {prefix!r} collides with names the generated code uses; choose another")
    return prefix


def generate(ticket: Ticket, prefix: str, arith: str = "float", word: int = 32,
             cache_static: bool = True, fixed_input: Any = None) -> tuple[str, str, dict[str, Any]]:
    """(header, source, info) for ``ticket``; nothing is written."""
    if arith == "float":
        from .emit_float import generate_float

        return generate_float(ticket, prefix, word, cache_static)
    from .emit_fixed import generate_fixed

    return generate_fixed(ticket, prefix, word, fixed_input)


def state_bytes(info: dict[str, Any], word: int) -> int:
    """sizeof(NAME_state) on a target where uint64_t aligns to 8 (Cortex-M's AAPCS does)."""
    total = 0
    sizes = {"float": 4, "int32_t": 4, "int64_t": 8, "uint64_t": 8, "uint32_t": 4, "W": word // 8}
    for ctype, _, count in info["state_fields"]:
        sz = sizes[ctype]
        total = -(-total // sz) * sz + sz * max(1, count)
    if info.get("float_arena"):
        total += 4 * info["float_arena"]
    if info.get("word_arena"):
        total = -(-total // (word // 8)) * (word // 8) + (word // 8) * info["word_arena"]
    total += 4
    return -(-total // 8) * 8


def export_c(ticket: Ticket, path: str | os.PathLike[str], prefix: str | None = None, arith: str | None = None,
             word: int | None = None, board: str | None = None, force: bool | None = None,
             cache_static: bool = True, measure_size: bool = True, fixed_input: Any = None) -> dict[str, Any]:
    """Write ``NAME.h``, ``NAME.c`` and ``README.md`` into the folder ``path``; return the size/fit report.

    ``arith``: ``float`` (default; the float32 reference, bit for bit) or ``fixed`` (the
    integers of slt_deploy.fixed_point). ``word``: 32 (default) or 64-bit words of the weight
    bit tables. ``board``: ``cortex-m4-256k``, ``cortex-m7-1m`` or ``flash=SIZE,ram=SIZE``; a
    ticket that does not fit is refused and nothing is written. An existing, non-empty
    folder is replaced only with ``force``, and only if slt wrote it (its ``.slt-manifest.json``
    lists every file, unchanged; :func:`slt_deploy.atomic.replace_folder`). ``cache_static``:
    NAME_infer computes layers that depend only on a direct input once instead of every step
    (costs their RAM).
    """
    if not isinstance(ticket, Ticket):
        raise SltError(f"export_c expects a Ticket, got {type(ticket).__name__}")
    out = Path(path)
    arith = arith or "float"
    if arith not in ("float", "fixed"):
        raise SltError(f"--arith must be float or fixed, got {arith!r}")
    word = 32 if word is None else word
    if word not in (32, 64):
        raise SltError(f"--word must be 32 or 64, got {word!r}")
    prefix = check_prefix(prefix if prefix is not None else default_prefix(out))
    profile = board_profile(board) if board else None
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise SltError(f"output {out} exists and is not a folder; --to c writes a folder (NAME.h, NAME.c)")
    clean_stale(out)  # temporaries of killed exports; a folder left aside by a kill is put back
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise SltError(f"output folder '{out}' exists and is not empty; pass --force to replace it")
        if (why := foreign_entry(str(out))) is not None:  # --force replaces only a folder slt wrote
            raise SltError(f"will not replace the folder '{out}' (--force replaces only a folder slt wrote): {why}; "
                           "remove it yourself or give another folder")

    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=parent))
    except OSError as exc:  # a read-only or special parent such as /sys, a file where a folder should be
        raise SltError(f"cannot write '{out}': {exc.strerror or exc}") from None
    try:
        cflags = profile.cflags if profile else M4F
        note = ""
        for attempt in (cache_static, False) if cache_static else (False,):
            header, source, info = generate(ticket, prefix, arith, word, attempt, fixed_input)
            (tmp / f"{prefix}.h").write_text(header)
            (tmp / f"{prefix}.c").write_text(source)
            sb = state_bytes(info, word)
            sizes, why = _measured(tmp, prefix, cflags, measure_size)
            if sizes is None:
                sizes = estimate(info, sb, len(ticket.nodes), why)
            report = _report(ticket, prefix, arith, word, out, info, sizes, sb, profile)
            if not (profile and not report["fits"] and attempt and report["static_cache_bytes"]):
                break
            note = (f"the cached static layers ({report['static_cache_bytes']:,} B) did not fit {profile.name}; "
                    "exported without the cache (NAME_infer recomputes them every step)")
        if note:
            report["note"] = note
        (tmp / "README.md").write_text(readme(prefix, ticket, info, report))
        if profile and not report["fits"]:
            raise SltUnsupportedError(
                f"ticket does not fit board {profile.name}: flash {sizes['flash']:,} B "
                f"{'>' if sizes['flash'] > profile.flash else '<='} {profile.flash:,} B, RAM {sizes['ram']:,} B "
                f"{'>' if sizes['ram'] > profile.ram else '<='} {profile.ram:,} B ({report['size_source']})"
            )
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _measured(folder: Path, prefix: str, cflags: tuple[str, ...], wanted: bool) -> tuple[dict[str, Any] | None, str]:
    """Sizes from the cross compiler, or (None, why not): a failed measurement never fails the export."""
    if not wanted:
        return None, "size measurement not requested"
    try:
        sizes = measure(folder, prefix, cflags)
    except SizeMeasurementError as exc:
        return None, f"{exc}; install libnewlib-arm-none-eabi for its C headers"
    return sizes, "arm-none-eabi-gcc not found"


def _replace_folder(tmp: Path, out: Path) -> None:
    os.chmod(tmp, 0o755)
    replace_folder(tmp, out)  # one atomic step (slt_deploy.atomic)


def _report(ticket: Ticket, prefix: str, arith: str, word: int, out: Path, info: dict[str, Any],
            sizes: dict[str, Any], sb: int, profile: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "prefix": prefix,
        "arith": arith,
        "word_bits": word,
        "files": [str(out / f"{prefix}.h"), str(out / f"{prefix}.c"), str(out / "README.md")],
        "flash_bytes": sizes["flash"],
        "ram_bytes": sizes["ram"],
        "text_bytes": sizes["text"],
        "rodata_bytes": sizes["rodata"],
        "data_bytes": sizes["data"],
        "bss_bytes": sizes["bss"],
        "stack_bytes": sizes["stack"],
        "state_bytes": sb,
        "weight_table_bytes": info["tables_bytes"],
        "static_cache_bytes": sum(4 * max(1, c) for _, name, c in info["state_fields"] if name.startswith("c_")),
        "size_source": sizes["tool"],
        "measured": not sizes["tool"].startswith("estimate"),
        "timesteps": ticket.timesteps,
        "encoding": ticket.encoding.kind,
        "layers": info["layers"],
    }
    if arith == "fixed":
        report["input_frac_bits"] = info.get("input_frac_bits", 0)
        report["fixed_point"] = info.get("fixed_report", {})
        if ticket.encoding.kind == "direct" and not info.get("calibrated"):
            report["note"] = ("direct input is taken as round(x * 2^0) integers: pass fixed_input= a calibration batch "
                              "(Python API) to choose the input scale as the Lava target does")
    if profile is not None:
        report.update({"board": profile.name, "board_flash_bytes": profile.flash, "board_ram_bytes": profile.ram,
                       "board_example": profile.example,
                       "fits": bool(sizes["flash"] <= profile.flash and sizes["ram"] <= profile.ram)})
    return report


def readme(prefix: str, ticket: Ticket, info: dict[str, Any], report: dict[str, Any]) -> str:
    P = prefix
    in_t = "uint32_t" if info["encoding"] == "spikes" else ("int32_t" if report["arith"] == "fixed" else "float")
    return f"""# {P}: spiking network for microcontrollers (generated by slt-deploy)

Files: `{P}.h` (API, state struct, bit layout), `{P}.c` (weights in flash, the step function).
C99; needs only `<stdint.h>` and `<string.h>`; no malloc, no other libc.

## Build

    cc -std=c99 -O2 -ffp-contract=off -c {P}.c          # host
    arm-none-eabi-gcc -std=c99 -Os -ffp-contract=off {' '.join(M4F)} -c {P}.c

Keep `-ffp-contract=off` (no fused multiply-add) and never use `-ffast-math`: the float mode
reproduces the slt-deploy reference bit for bit only when every float operation rounds once.

## Use

```c
#include "{P}.h"
static {P}_state state;                 /* {report['state_bytes']} bytes of RAM */

{P}_input_t x[{P.upper()}_INFER_IN_LEN];       /* {info['encoding']} input */
{P}_count_t counts[{P.upper()}_N_OUT];
int cls = {P}_infer(&state, x, counts);  /* reset + {ticket.timesteps} steps; argmax of counts */

/* or step by step (streaming): */
{P}_output_t out[{P.upper()}_OUT_LEN];
{P}_reset(&state);
{P}_step(&state, x, out);
```

Input type: `{in_t}`. Spike frames are bit vectors: bit j is bit (j % 32) of word j / 32,
padded with zeros to a multiple of 64 bits (slt_deploy/bits.py).

## Size ({report['size_source']})

| flash (.text+.rodata) | RAM (.data+.bss+stack) | state | weight tables |
|---|---|---|---|
| {report['flash_bytes']:,} B | {report['ram_bytes']:,} B | {report['state_bytes']:,} B \
| {report['weight_table_bytes']:,} B |
"""
