"""The exception hierarchy of slt-deploy.

Every error a user can cause is an :class:`SltError`. Messages are one line: what was
wrong, where (node or tensor name), and what to do. The CLI prints the message and exits
with status 2; it never shows a traceback for an ``SltError``.
"""

from __future__ import annotations


class SltError(Exception):
    """Base class of every error slt-deploy raises on purpose."""


class SltValidationError(SltError, ValueError):
    """A ticket graph or parameter is inconsistent (shapes, cycles, non-finite values)."""


class SltFormatError(SltError):
    """A .slt file (or another packed file) is malformed, truncated, corrupt or unsupported."""


class SltImportError(SltError):
    """A source model (PyTorch, snnTorch, SpikingJelly, NIR, checkpoint) cannot be imported."""


class SltUnsupportedError(SltError):
    """A construct exists but this exporter, target or importer cannot express it exactly."""


class SltInputError(SltError, ValueError):
    """Run-time input is wrong: shape, dtype, NaN/inf values, or time steps that disagree."""


class SltEnergyError(SltError, ValueError):
    """The energy model cannot be applied as asked (unknown convention, mismatched dense model)."""


class SltWarning(UserWarning):
    """Something a user should know that does not stop the work (the CLI prints it as one line)."""


class SltProfileError(SltEnergyError):
    """An energy profile is unknown, unreadable, or has a missing, negative or non-finite constant."""
