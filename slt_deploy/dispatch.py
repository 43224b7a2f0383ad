"""Handler tables: how every backend (target, exporter, format, counter) dispatches on node kinds.

Each backend declares one table ``{node kind: handler}`` instead of an ``isinstance``
ladder, and states explicitly which kinds it refuses and why::

    HANDLERS = HandlerTable("nir export", {
        Linear: export_linear,
        Conv2d: export_conv,
        MaxPool2d: refuse("MaxPool2d has no NIR 1.0 primitive; export to ONNX instead"),
        ...
    })
    handler = HANDLERS.handler(node)       # SltUnsupportedError naming the node if unsupported

Keys are node classes (or their ``kind`` strings). Lookup is by ``node.kind``, so a
subclass never silently inherits a handler. ``tests/test_node_kinds.py`` walks every kind in
:data:`slt_deploy.ir.nodes.NODE_KINDS` against every registered backend's table: a new node
kind fails exactly that test, which lists the backends that have neither a handler nor a
refusal for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import SltUnsupportedError
from .ir.nodes import Node

H = TypeVar("H")


@dataclass(frozen=True)
class Refusal:
    """A node kind the backend knowingly cannot express; ``reason`` says why and what to do."""

    reason: str


def refuse(reason: str) -> Refusal:
    """Mark a node kind as refused by a backend (see :class:`HandlerTable`)."""
    return Refusal(reason)


class HandlerTable(Mapping[str, Any], Generic[H]):
    """A backend's ``{node kind: handler | Refusal}`` table with one error for what it lacks."""

    def __init__(self, backend: str, handlers: Mapping[type[Node] | str, H | Refusal]) -> None:
        self.backend = backend
        table: dict[str, H | Refusal] = {}
        for key, value in handlers.items():
            kind = key if isinstance(key, str) else key.kind
            if kind in table:
                raise TypeError(f"{backend}: node kind {kind!r} listed twice in its handler table")
            table[kind] = value
        self._table = table

    # Mapping protocol: kind -> handler or Refusal
    def __getitem__(self, kind: str) -> H | Refusal:
        return self._table[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def handles(self, kind: str) -> bool:
        """True when the backend has a handler (not a refusal) for ``kind``."""
        return kind in self._table and not isinstance(self._table[kind], Refusal)

    def refusal(self, node: Node) -> str | None:
        """The one-line reason ``node`` is refused, or None when the backend handles it."""
        entry = self._table.get(node.kind)
        if entry is None:
            return f"node '{node.name}': {self.backend} has no rule for node kind {node.kind!r}"
        if isinstance(entry, Refusal):
            return f"node '{node.name}' ({node.kind}): {entry.reason}"
        return None

    def handler(self, node: Node) -> H:
        """The handler of ``node``'s kind; :class:`SltUnsupportedError` naming the node otherwise."""
        entry = self._table.get(node.kind)
        if entry is None or isinstance(entry, Refusal):
            raise SltUnsupportedError(self.refusal(node))
        return entry

    def check(self, nodes: Any) -> None:
        """Raise for the first node of ``nodes`` the backend refuses (before any work starts)."""
        for node in nodes:
            reason = self.refusal(node)
            if reason is not None:
                raise SltUnsupportedError(reason)

    def call(self, node: Node, *args: Any, **kwargs: Any) -> Any:
        """``handler(node)(node, *args, **kwargs)``: the common call shape of handler functions."""
        fn: Callable[..., Any] = self.handler(node)  # type: ignore[assignment]
        return fn(node, *args, **kwargs)


__all__ = ["HandlerTable", "Refusal", "refuse"]
