"""Importers: PyTorch / snnTorch / SpikingJelly modules and checkpoints -> Ticket.

torch is imported only when one of these functions is called (see docs/importers.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_from_arch", "import_module", "load_checkpoint"]


def import_module(module: Any, example_input: Any = None, **options: Any) -> Any:
    """See :func:`slt_deploy.importers.torch.import_module`."""
    from .torch import import_module as _impl

    return _impl(module, example_input, **options)


def load_checkpoint(path: Any, trust_pickle: bool = False) -> Any:
    """See :func:`slt_deploy.importers.torch.load_checkpoint`."""
    from .torch import load_checkpoint as _impl

    return _impl(path, trust_pickle=trust_pickle)


def build_from_arch(arch: str, weights_path: Any = None, trust_pickle: bool = False) -> Any:
    """See :func:`slt_deploy.importers.torch.build_from_arch`."""
    from .torch import build_from_arch as _impl

    return _impl(arch, weights_path, trust_pickle=trust_pickle)
