"""Host harness: compile generated C with the host compiler, feed it inputs, read its outputs.

Used by the tests (spike-exact comparison with the reference) and by
benchmarks/c_export.py (latency). Not part of what runs on a microcontroller.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from slt_deploy import bits
from slt_deploy.errors import SltError
from slt_deploy.ir.graph import Ticket

STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-ffp-contract=off")
SANITIZE_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-ffp-contract=off",
                  "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def host_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def harness_source(prefix: str) -> str:
    text = resources.files(__package__).joinpath("templates/harness.c").read_text()
    return text.replace("@PU@", prefix.upper()).replace("@P@", prefix)


@dataclass
class Harness:
    exe: Path
    prefix: str
    ticket: Ticket
    spiking: bool
    in_len: int
    out_len: int
    arith: str = "float"

    def _write_inputs(self, x: np.ndarray, path: Path) -> int:
        t = self.ticket
        n_in = int(np.prod(t.input_shape))
        if t.encoding.kind == "spikes":
            T, batch = x.shape[0], x.shape[1]
            frames = []
            for b in range(batch):
                packed = bits.pack_rows(np.asarray(x[:, b]).reshape(T, n_in) != 0)  # (T, words64)
                frames.append(packed.reshape(-1).view("<u4"))
            data = np.stack(frames).astype("<u4")
        else:
            batch = x.shape[0]
            dt = "<i4" if (self.arith == "fixed" and t.encoding.kind == "direct") else "<f4"
            data = np.ascontiguousarray(np.asarray(x).reshape(batch, n_in), dtype=dt)
        with open(path, "wb") as f:
            f.write(np.int32(batch).tobytes())
            f.write(data.tobytes())
        return batch

    def run(self, x: np.ndarray, workdir: Path) -> dict[str, np.ndarray]:
        """Per-step outputs ``(T, batch, n_out)`` (0/1 spikes or values), ``counts`` and ``classes``."""
        t = self.ticket
        inp, outp = workdir / f"{self.prefix}_in.bin", workdir / f"{self.prefix}_out.bin"
        batch = self._write_inputs(x, inp)
        proc = subprocess.run([str(self.exe), str(inp), str(outp)], capture_output=True, text=True)
        if proc.returncode:
            raise SltError(f"harness {self.exe.name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        raw = outp.read_bytes()
        T = t.timesteps
        n_out = int(np.prod(t.output_shape))
        out_dt = np.dtype("<u4") if self.spiking else np.dtype("<i4" if self.arith == "fixed" else "<f4")
        cnt_dt = np.dtype("<i4") if (self.spiking or self.arith == "fixed") else np.dtype("<f4")
        per = T * self.out_len * 4 + n_out * 4 + 4
        if len(raw) != per * batch:
            raise SltError(f"harness wrote {len(raw)} bytes, expected {per * batch}")
        outs, counts, classes = [], [], []
        for b in range(batch):
            chunk = raw[b * per:(b + 1) * per]
            steps = np.frombuffer(chunk[:T * self.out_len * 4], out_dt).reshape(T, self.out_len)
            if self.spiking:
                words = np.ascontiguousarray(steps).view("<u8")
                steps = bits.unpack_rows(words, n_out, strict=False).astype(np.float32)
            outs.append(steps)
            counts.append(np.frombuffer(chunk[T * self.out_len * 4:T * self.out_len * 4 + n_out * 4], cnt_dt))
            classes.append(int(np.frombuffer(chunk[-4:], "<i4")[0]))
        return {"output": np.stack(outs, axis=1).reshape(T, batch, *t.output_shape),
                "counts": np.stack(counts).reshape(batch, *t.output_shape), "classes": np.array(classes)}

    def time_infer(self, x: np.ndarray, reps: int, workdir: Path) -> np.ndarray:
        """Nanoseconds of each ``NAME_infer`` call: ``(batch, reps)``."""
        inp, outp = workdir / f"{self.prefix}_tin.bin", workdir / f"{self.prefix}_tout.bin"
        batch = self._write_inputs(x, inp)
        subprocess.run([str(self.exe), str(inp), str(outp), str(reps)], check=True, capture_output=True)
        return np.frombuffer(outp.read_bytes(), "<f8").reshape(batch, reps)


def build(folder: Path, prefix: str, ticket: Ticket, flags: tuple[str, ...] = STRICT_FLAGS,
          info: dict | None = None, exe_name: str | None = None, arith: str = "float") -> Harness:
    """Compile ``folder/prefix.c`` with the harness main; raises SltError with the compiler's message."""
    cc = host_compiler()
    if cc is None:
        raise SltError("no host C compiler (gcc/cc) found")
    folder = Path(folder)
    main = folder / f"{prefix}_harness.c"
    main.write_text(harness_source(prefix))
    exe = folder / (exe_name or f"{prefix}_harness")
    proc = subprocess.run([cc, *flags, "-I", str(folder), str(folder / f"{prefix}.c"), str(main), "-o", str(exe)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SltError(f"host compile failed:\n{proc.stderr[-4000:]}")
    header = (folder / f"{prefix}.h").read_text()

    def macro(name: str) -> int:
        for line in header.splitlines():
            if line.startswith(f"#define {prefix.upper()}_{name} "):
                return int(line.split()[2].rstrip("u"))
        raise SltError(f"macro {name} missing from {prefix}.h")

    return Harness(exe, prefix, ticket, bool(macro("SPIKING_OUTPUT")), macro("IN_LEN"), macro("OUT_LEN"), arith)
