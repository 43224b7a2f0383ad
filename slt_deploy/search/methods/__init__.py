"""Search methods, by ``--method`` name, loaded on first use (importing this needs numpy only).

Built in: ``imp``, ``et``, ``eb`` (:mod:`.lottery`). A new method is a
:class:`~slt_deploy.search.methods.base.SearchMethod` subclass registered under its name:
either a line in :data:`_REGISTRY` (``"name": "package.module:Class"``) or, at run time,
:func:`register_method`. The engine gives it checkpoints, ``--resume``, logging, the binary
fine-tune, export and data-parallel training (docs/search.md, "Adding a search method").
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_REGISTRY: dict[str, Any] = {
    "imp": "slt_deploy.search.methods.lottery:IMP",
    "et": "slt_deploy.search.methods.lottery:EarlyTime",
    "eb": "slt_deploy.search.methods.lottery:EarlyBird",
}


def method_names() -> tuple[str, ...]:
    """Every registered ``--method`` value, in registration order."""
    return tuple(_REGISTRY)


def register_method(name: str, target: Any) -> None:
    """Register a :class:`~.base.SearchMethod` subclass (or ``"package.module:Class"``) as ``name``."""
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"method name must be a lower-case identifier, got {name!r}")
    _REGISTRY[name] = target


def get_method(name: str) -> Any:
    """A new instance of the method registered as ``name``."""
    target = _REGISTRY[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(import_module(module), attr)
        _REGISTRY[name] = target
    return target()
