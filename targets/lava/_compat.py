"""Importing lava-nc 0.10.0 under Python 3.11 (and telling the user clearly when it is missing).

lava-nc 0.10.0 declares Python < 3.11 and numpy < 2. Everything slt uses runs on Python 3.11 and numpy 2.4 except two
spots, both fixed in memory when the target imports Lava (nothing on disk changes, no Lava
code is copied):

1. Python 3.11: one module,
``lava/magma/compiler/var_model.py`` declares dataclass fields with *instance* defaults::

    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()      # ValueError on Python >= 3.11 (mutable default)

``ByteEncoder`` is a non-frozen dataclass, so it is unhashable, which Python 3.11's
``dataclasses`` rejects as a mutable default. Lava's compiler imports that module, so
every Lava run fails at import.

The fix here changes nothing on disk and copies no Lava code: before anything imports it,
we read the installed module's source text, rewrite exactly those defaults to
``field(default_factory=ByteEncoder)`` (same meaning: each instance gets a fresh encoder,
which is what the 3.10 code intended), compile that text under the original file name and
register the result as ``lava.magma.compiler.var_model`` in ``sys.modules``. The rest of
Lava then imports normally and finds the fixed module. If the installed Lava already
imports cleanly (a fixed release), nothing is rewritten; if the source no longer looks
as expected, the error says so instead of guessing.

2. numpy >= 2.4: ``ReshapePort`` (``lava/magma/core/process/ports/ports.py``), behind
``port.reshape()`` / ``port.flatten()``, builds ``functools.partial(np.reshape,
newshape=...)``; numpy 2.4 removed the ``newshape`` keyword, so data through such a port
raises in the receiving process and the run fails or hangs. Where ``np.reshape`` no longer
takes ``newshape``, the two methods ``get_transform_func_fwd`` / ``get_transform_func_bwd``
are replaced by ones passing the same shape as ``shape=`` (numpy's name for it since 1.x).
lava-dl's netx uses ``out.transpose([2, 1, 0]).flatten()`` between conv and dense blocks,
so this matters for exported networks too.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import re
import sys
import types

import numpy as np

from slt_deploy.errors import SltUnsupportedError

VAR_MODEL = "lava.magma.compiler.var_model"
_DEFAULT = re.compile(r"^(?P<indent>[ \t]+)(?P<name>\w+):[ \t]*(?P<cls>\w+)[ \t]*=[ \t]*(?P=cls)\(\)[ \t]*$", re.M)
INSTALL_HINT = (
    "lava-nc is not installed; install it with "
    "`pip install --no-deps --ignore-requires-python lava-nc==0.10.0` plus `pip install 'slt-deploy[lava]'` "
    "(tools/bootstrap.sh does both)"
)

_state: dict[str, object] = {}


def patched_var_model_source(source: str) -> tuple[str, int]:
    """``source`` with ``x: Cls = Cls()`` dataclass defaults rewritten to ``default_factory``; (text, count)."""
    def repl(m: re.Match[str]) -> str:
        return (f"{m.group('indent')}{m.group('name')}: {m.group('cls')} = "
                f"__import__('dataclasses').field(default_factory={m.group('cls')})")

    return _DEFAULT.subn(repl, source)


def _install_var_model_fix() -> int:
    """Load var_model from its rewritten source; return how many defaults were rewritten."""
    if VAR_MODEL in sys.modules:
        return 0
    try:
        spec = importlib.util.find_spec(VAR_MODEL)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        raise SltUnsupportedError(INSTALL_HINT)
    try:
        importlib.import_module(VAR_MODEL)
        return 0  # this Lava already imports on this Python: nothing to fix
    except ValueError as exc:
        if "mutable default" not in str(exc):
            raise
        sys.modules.pop(VAR_MODEL, None)
    with open(spec.origin, encoding="utf-8") as fh:
        source = fh.read()
    fixed, count = patched_var_model_source(source)
    if count == 0:
        raise SltUnsupportedError(
            f"cannot import Lava: {spec.origin} fails on Python {sys.version_info.major}.{sys.version_info.minor} "
            "and does not have the expected `x: Encoder = Encoder()` defaults to fix"
        )
    module = types.ModuleType(VAR_MODEL)
    module.__file__ = spec.origin
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__package__ = VAR_MODEL.rpartition(".")[0]
    sys.modules[VAR_MODEL] = module
    try:
        exec(compile(fixed, spec.origin, "exec"), module.__dict__)  # noqa: S102 - Lava's own source, rewritten
    except Exception:
        sys.modules.pop(VAR_MODEL, None)
        raise
    return count


def _install_reshape_fix() -> bool:
    """Make Lava's ReshapePort work on numpy >= 2.4 (see the module docstring); True if patched."""
    if "newshape" in inspect.signature(np.reshape).parameters:
        return False
    from lava.magma.core.process.ports.ports import ReshapePort

    if getattr(ReshapePort, "_slt_reshape_fix", False):
        return True

    def fwd(self: ReshapePort) -> functools.partial:
        return functools.partial(np.reshape, shape=self.shape)

    def bwd(self: ReshapePort) -> functools.partial:
        return functools.partial(np.reshape, shape=self.old_shape)

    ReshapePort.get_transform_func_fwd = fwd
    ReshapePort.get_transform_func_bwd = bwd
    ReshapePort._slt_reshape_fix = True
    return True


def import_lava() -> types.SimpleNamespace:
    """Import the Lava pieces the target uses (applying the Python 3.11 fix first)."""
    if "module" in _state:
        return _state["module"]  # type: ignore[return-value]
    try:
        import lava.magma  # noqa: F401
    except ImportError:
        raise SltUnsupportedError(INSTALL_HINT) from None
    try:
        rewritten = _install_var_model_fix()
        reshape_fixed = _install_reshape_fix()
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIF
        from lava.proc.sparse.process import DelaySparse, Sparse
    except ImportError as exc:
        raise SltUnsupportedError(f"lava-nc is installed but cannot be imported ({exc}); {INSTALL_HINT}") from None
    ns = types.SimpleNamespace(RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg, Conv=Conv, Dense=Dense, Sink=Sink,
                               Source=Source, LIF=LIF, Sparse=Sparse, DelaySparse=DelaySparse,
                               var_model_defaults_rewritten=rewritten, reshape_port_fixed=reshape_fixed)
    _state["module"] = ns
    return ns


def lava_available() -> bool:
    """True when lava-nc imports (with the fix applied)."""
    try:
        import_lava()
        return True
    except SltUnsupportedError:
        return False
