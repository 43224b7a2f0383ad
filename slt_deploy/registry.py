"""The registry: every target and exporter, declared once with a typed contract.

A **target** runs a ticket: ``run(ticket, x, *, record, **options) -> Result``. An
**exporter** writes one: ``export(ticket, path, **options) -> report dict``. Each is declared
here by a :class:`TargetSpec` / :class:`ExporterSpec` naming its module lazily (heavy
dependencies load only when it is used), the arithmetic it implements, its options (Python
keyword, CLI flag, help, choices), its install extra and its handler table
(:class:`slt_deploy.dispatch.HandlerTable`, the node kinds it supports or refuses).

Everything else reads this table: :func:`slt_deploy.run` / :func:`slt_deploy.export`, ``slt
verify`` (which pairs are exact by design), the CLI's choices and help, the docs table
(``python -m slt_deploy.registry`` prints it; a test keeps docs/targets.md in step), the
node-kind coverage test and the spike-for-spike conformance suite. Registering a target is
all it takes to be tested against the reference.

Arithmetic (what ``slt verify`` compares):

- ``float32-exact``: the float32 semantics of docs/semantics.md; equal to the reference
  spike for spike, node for node.
- ``fixed-point``: Loihi's integer semantics of :mod:`slt_deploy.fixed_point`; equal to the
  ``fixed-reference`` target spike for spike (and to the float reference where the conversion
  report proves it, see :attr:`TargetSpec.semantics`).
- ``approximate``: its own arithmetic; agreement is measured and reported, never assumed.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import SltError, SltInputError


class Arithmetic(StrEnum):
    """The arithmetic a target implements, or that an exported file's consumers compute."""

    FLOAT32_EXACT = "float32-exact"
    FIXED_POINT = "fixed-point"
    APPROXIMATE = "approximate"


FLOAT32 = Arithmetic.FLOAT32_EXACT.value
FIXED = Arithmetic.FIXED_POINT.value


@dataclass(frozen=True)
class Option:
    """One option of a target or exporter: Python keyword, CLI flag, help, accepted values.

    ``kind`` is how the CLI reads the flag's value: ``str``, ``int``, ``float``, ``bool`` (a
    switch) or ``npy`` (a path to a .npy file, loaded as untrusted input). ``flag`` None: a
    Python-only option (no CLI flag). ``choices`` are checked for string values; the target
    itself validates other spellings (``np.float64`` for ``dtype``, say).
    """

    name: str
    flag: str | None
    help: str
    kind: str = "str"
    choices: tuple[str, ...] | None = None

    def check(self, value: Any, owner: str) -> Any:
        """Validate a Python value for this option; one-line :class:`SltInputError` naming the flag."""
        if self.choices is not None and isinstance(value, str) and value not in self.choices:
            raise SltInputError(f"{self.flag or self.name} for {owner} must be one of {', '.join(self.choices)}, "
                                f"got {value!r}")
        return value


@dataclass(frozen=True)
class _Spec:
    name: str
    summary: str
    arithmetic: Arithmetic
    entry: str                        # "module:function", imported when used
    handlers: str                     # "module:ATTRIBUTE" of the HandlerTable
    extra: str | None = None          # pip extra: pip install 'slt-deploy[extra]'
    requires: tuple[str, ...] = ()    # importable modules that must be present
    options: tuple[Option, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments always passed

    def load(self) -> Callable[..., Any]:
        """The entry function (imports its module)."""
        return _resolve(self.entry)

    def handler_table(self) -> Any:
        """The backend's :class:`~slt_deploy.dispatch.HandlerTable` (imports its module)."""
        return _resolve(self.handlers)

    def available(self) -> bool:
        """True when every module it needs can be imported (no import is done)."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def missing_message(self) -> str:
        extra = f": pip install 'slt-deploy[{self.extra}]'" if self.extra else ""
        return f"{self.kind_word} '{self.name}' needs {', '.join(self.requires)}{extra}"

    @property
    def kind_word(self) -> str:
        return "target"

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def checked_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` validated against the declared ones (unknown names are one-line errors)."""
        out = {}
        for key, value in options.items():
            opt = self.option(key)
            if opt is None:
                known = ", ".join(o.name for o in self.options) or "none"
                raise SltInputError(f"{self.kind_word} '{self.name}' has no option {key!r} (its options: {known})")
            out[key] = opt.check(value, f"{self.kind_word} '{self.name}'")
        return out


@dataclass(frozen=True)
class TargetSpec(_Spec):
    """A runtime. ``semantics``: optional ``"module:function"`` ``(ticket, x) -> (set, notes)``
    for targets whose exactness depends on the ticket (Lava: what its conversion report proves)."""

    semantics: str | None = None
    default_verify: bool = False      # in the default `slt verify` target list (cheap, always exact)
    exact_sums: bool = True           # False: accumulates synaptic sums in float64 in its own order, so it
    #                                   equals the reference except where the reference needed its exact
    #                                   slow path (slt_deploy.exact.fallback_count; terms spanning ~2^50)
    prepare: str | None = None        # "module:function" (ticket, **options) -> object with .run(x, record=...),
    #                                   for repeated runs without re-preparing (compiled models, packed weights)
    file_entry: str | None = None     # "module:function" running a file directly: (path, x, record, **options)
    file_suffixes: tuple[str, ...] = ()  # the files file_entry takes (.slt memory-mapped, an exported .onnx)

    def prepared(self, ticket: Any, **options: Any) -> Callable[..., Any]:
        """``run(x, record=False) -> Result`` for repeated runs of ``ticket`` (prepared once where it pays)."""
        options = self.checked_options(options)
        if self.prepare is not None:
            return _resolve(self.prepare)(ticket, **self.fixed, **options).run
        entry = self.load()
        return lambda x, record=False: entry(ticket, x, record=record, **self.fixed, **options)

    def load_file_runner(self) -> Callable[..., Any]:
        if self.file_entry is None:
            raise SltError(f"target '{self.name}' does not run files directly")
        return _resolve(self.file_entry)

    def semantics_for(self, ticket: Any, x: Any) -> tuple[frozenset[str], list[str]]:
        """The arithmetic a run of ``ticket`` on ``x`` provably implements, and notes explaining it."""
        if self.semantics is None:
            exact = set() if self.arithmetic is Arithmetic.APPROXIMATE else {self.arithmetic.value}
            return frozenset(exact), []
        sem, notes = _resolve(self.semantics)(ticket, x)
        return frozenset(sem), list(notes)


@dataclass(frozen=True)
class ExporterSpec(_Spec):
    """An output format. ``suffix``: the usual file name ending ('' for a folder)."""

    suffix: str = ""

    @property
    def kind_word(self) -> str:
        return "export format"


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


# ------------------------------------------------------------------ the catalog
_PRECISION = Option("dtype", "--precision", "working precision: float32 (exact-comparison mode) or float64",
                    choices=("float32", "float64"))
_ALLOW_APPROX = Option("allow_approximate", "--allow-approximate", "write constructs the format states only "
                       "approximately (each one reported) instead of refusing", kind="bool")
_FRAC_BITS = Option("input_frac_bits", "--input-frac-bits", "direct (analog) input on Loihi: graded spikes "
                    "round(x*2^s); s is chosen from the input unless given", kind="int")

_PROGRESS = Option("progress", None, "callable(done, total) called as a long simulation advances", kind="callable")

TARGETS: dict[str, TargetSpec] = {}
EXPORTERS: dict[str, ExporterSpec] = {}


def register_target(spec: TargetSpec) -> TargetSpec:
    """Add a target (a plug-in may call this too); it then runs everywhere and is conformance-tested."""
    if spec.name in TARGETS:
        raise ValueError(f"target {spec.name!r} is registered twice")
    TARGETS[spec.name] = spec
    return spec


def register_exporter(spec: ExporterSpec) -> ExporterSpec:
    """Add an export format (a plug-in may call this too)."""
    if spec.name in EXPORTERS:
        raise ValueError(f"export format {spec.name!r} is registered twice")
    EXPORTERS[spec.name] = spec
    return spec


REFERENCE = register_target(TargetSpec(
    "reference", "plain numpy simulator: the executable specification (float32 or float64)",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.reference:simulate", "slt_deploy.reference:HANDLERS",
    options=(_PRECISION,), default_verify=True))
CPU = register_target(TargetSpec(
    "cpu", "bit-packed CPU runtime: popcount / event / gather kernels, numba-compiled or numpy",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.targets.cpu:run", "slt_deploy.targets.cpu.runtime:HANDLERS",
    extra="fast", options=(
        Option("backend", "--backend", "kernels: auto (numba when installed), numba or numpy",
               choices=("auto", "numba", "numpy")),
        Option("threads", "--threads", "worker threads the batch is split over (default: all cores)", kind="int"),
        Option("kernel", "--kernel", "force one synaptic kernel wherever it applies (testing)",
               choices=("popcount", "event", "gather")),
    ), default_verify=True, prepare="slt_deploy.targets.cpu:load", file_entry="slt_deploy.targets.cpu:run",
    file_suffixes=(".slt",)))
TORCH = register_target(TargetSpec(
    "torch", "PyTorch ops, CPU or CUDA, operation for operation as the reference",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.targets.torch:run", "slt_deploy.targets.torch:HANDLERS",
    extra="torch", requires=("torch",), exact_sums=False, options=(
        _PRECISION, Option("device", "--device", "torch device: cpu, cuda, cuda:1, ..."))))
ONNXRUNTIME = register_target(TargetSpec(
    "onnxruntime", "the exported ONNX model (one Loop) on ONNX Runtime, graph optimizations off",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.targets.onnxruntime:run", "slt_deploy.exporters.onnx:HANDLERS",
    extra="onnx", requires=("onnx", "onnxruntime"), exact_sums=False, options=(
        Option("threads", "--threads", "ONNX Runtime intra-op threads (default: its own choice)", kind="int"),
        Option("mode", None, "exporter mode: loop or unrolled", choices=("loop", "unrolled")),
        Option("weights", None, "exporter weight storage", choices=("auto", "dense", "bitmask", "index", "float32")),
        Option("optimization", None, "ONNX Runtime graph optimization level; only 'disable' is exact",
               choices=("disable", "basic", "extended", "all")),
    ), prepare="slt_deploy.targets.onnxruntime:compile_ticket",
    file_entry="slt_deploy.targets.onnxruntime:run_onnx_file", file_suffixes=(".onnx",)))
LAVA = register_target(TargetSpec(
    "lava", "lava-nc processes on Loihi 2's simulation, fixed point (bit-accurate integers)",
    Arithmetic.FIXED_POINT, "slt_deploy.targets.lava:run", "slt_deploy.fixed_point.plan:HANDLERS",
    extra="lava", requires=("lava",), fixed={"mode": "fixed_pt"},
    semantics="slt_deploy.targets.lava:fixed_semantics", options=(
        Option("synapse", "--synapse", "Lava synapse processes: auto, dense or sparse",
               choices=("auto", "dense", "sparse")), _FRAC_BITS, _PROGRESS)))
LAVA_FLOAT = register_target(TargetSpec(
    "lava-float", "lava-nc floating-point models of the same processes (float64, Lava's operation order)",
    Arithmetic.APPROXIMATE, "slt_deploy.targets.lava:run", "slt_deploy.fixed_point.plan:HANDLERS",
    extra="lava", requires=("lava",), fixed={"mode": "floating_pt"},
    semantics="slt_deploy.targets.lava:float_semantics", options=(
        Option("synapse", "--synapse", "Lava synapse processes: auto, dense or sparse",
               choices=("auto", "dense", "sparse")), _PROGRESS)))
FIXED_REFERENCE = register_target(TargetSpec(
    "fixed-reference", "numpy simulator of Loihi's integers: predicts Lava fixed point exactly",
    Arithmetic.FIXED_POINT, "slt_deploy.fixed_point:simulate_fixed", "slt_deploy.fixed_point.plan:HANDLERS",
    semantics="slt_deploy.fixed_point:fixed_semantics", options=(_FRAC_BITS,), default_verify=False))

NIR = register_exporter(ExporterSpec(
    "nir", "NIR graph (HDF5): lossless for slt, exact where NIR consumers read it the same way",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.exporters.nir:export_nir", "slt_deploy.exporters.nir._export:HANDLERS",
    extra="nir", requires=("nir", "h5py"), suffix=".nir", options=(
        Option("dt", "--dt", "time step in seconds stored in the graph (default 1e-4)", kind="float"),
        _ALLOW_APPROX)))
ONNX = register_exporter(ExporterSpec(
    "onnx", "one ONNX Loop model (opset 18), compact bitmask / gap / int8 weights, dynamic batch",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.exporters.onnx:export_onnx", "slt_deploy.exporters.onnx:HANDLERS",
    extra="onnx", requires=("onnx",), suffix=".onnx", options=(
        Option("mode", "--mode", "loop (one ONNX Loop) or unrolled (T copies of the step)",
               choices=("loop", "unrolled")),
        Option("weights", "--weights", "weight storage: auto (smallest per layer), dense, bitmask, index, float32",
               choices=("auto", "dense", "bitmask", "index", "float32")),
        Option("record", None, "extra graph outputs: neurons (spike counts, the default), all (every node) or "
               "output (none)", choices=("neurons", "all", "output")))))
NETX = register_exporter(ExporterSpec(
    "netx", "lava-dl netx HDF5 (Loihi CUBA layers, the integers of slt's fixed-point conversion)",
    Arithmetic.FIXED_POINT, "slt_deploy.exporters.netx:export_netx", "slt_deploy.exporters.netx:HANDLERS",
    extra="nir", requires=("h5py",), suffix=".net.h5", options=(_ALLOW_APPROX, _FRAC_BITS)))
C = register_exporter(ExporterSpec(
    "c", "static C99 for microcontrollers: no malloc; float mode bit-exact, fixed mode = Loihi integers",
    Arithmetic.FLOAT32_EXACT, "slt_deploy.exporters.c:export_c", "slt_deploy.exporters.c.plan:HANDLERS",
    suffix="", options=(
        Option("prefix", "--prefix", "name prefix of the generated files and symbols"),
        Option("arith", "--arith", "arithmetic: float (bit-exact float32) or fixed (Loihi integers)",
               choices=("float", "fixed")),
        Option("word", "--word", "bit-plane word size: 32 or 64", kind="int"),
        Option("board", "--board", "board profile the ticket must fit (flash/RAM report)"),
        Option("force", "--force", "replace an existing output folder that slt wrote", kind="bool"),
        Option("fixed_input", "--calibrate", "with --arith fixed: .npy of typical direct inputs that fixes the "
               "input scale (default: integers)", kind="npy"),
        Option("cache_static", None, "compute a static (direct-input) first layer once per inference", kind="bool"),
        Option("measure_size", None, "compile with the cross compiler for the flash/RAM report", kind="bool"))))


# Other code that dispatches on node kinds (besides targets and exporters): each must handle or refuse
# every node kind too (tests/test_node_kinds.py walks them with the targets' and exporters' tables).
NODE_BACKENDS: dict[str, str] = {
    ".slt format": "slt_deploy.format.schema:HANDLERS",
    "energy counter": "slt_deploy.energy.counting:HANDLERS",
    "ANN twin of the energy report": "slt_deploy.energy.ann:HANDLERS",
}


def handler_tables() -> dict[str, str]:
    """Every backend that dispatches on node kinds -> the "module:ATTRIBUTE" of its handler table."""
    tables = {f"target {n}": s.handlers for n, s in TARGETS.items()}
    tables |= {f"export {n}": s.handlers for n, s in EXPORTERS.items()}
    return tables | NODE_BACKENDS


# ------------------------------------------------------------------ lookups
def target(name: str) -> TargetSpec:
    """The spec of target ``name``; a one-line error listing the choices otherwise."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise SltError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}") from None


def exporter(name: str) -> ExporterSpec:
    """The spec of export format ``name``; a one-line error listing the choices otherwise."""
    try:
        return EXPORTERS[name]
    except (KeyError, TypeError):
        raise SltError(f"unknown export format {name!r}; choose one of {', '.join(EXPORTERS)}") from None


def target_for_file(suffix: str) -> TargetSpec | None:
    """The target that runs files with ``suffix`` as they are and nothing else does (an exported .onnx), if any."""
    owners = [spec for spec in TARGETS.values() if suffix in spec.file_suffixes]
    return owners[0] if len(owners) == 1 and suffix != ".slt" else None


def exact_targets(arithmetic: Arithmetic = Arithmetic.FLOAT32_EXACT) -> list[str]:
    """Names of the targets declaring ``arithmetic`` (the conformance suite's parameters)."""
    return [name for name, spec in TARGETS.items() if spec.arithmetic is arithmetic]


def flag_owners(flag: str, specs: Mapping[str, _Spec]) -> list[str]:
    """Names of the targets/exporters in ``specs`` that accept the CLI ``flag``."""
    return [name for name, spec in specs.items() if any(o.flag == flag for o in spec.options)]


def markdown_table() -> str:
    """The targets and exporters as Markdown (docs/targets.md embeds this, checked by a test)."""
    lines = ["| target | arithmetic | runs | options | install |", "|---|---|---|---|---|"]
    for spec in TARGETS.values():
        opts = ", ".join(f"`{o.flag}`" for o in spec.options if o.flag) or "-"
        extra = f"`[{spec.extra}]`" if spec.extra else "core"
        lines.append(f"| `{spec.name}` | {spec.arithmetic.value} | {spec.summary} | {opts} | {extra} |")
    lines += ["", "| export format | arithmetic | writes | options | install |", "|---|---|---|---|---|"]
    for spec in EXPORTERS.values():
        opts = ", ".join(f"`{o.flag}`" for o in spec.options if o.flag) or "-"
        extra = f"`[{spec.extra}]`" if spec.extra else "core"
        lines.append(f"| `{spec.name}` | {spec.arithmetic.value} | {spec.summary} | {opts} | {extra} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
