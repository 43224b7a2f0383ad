"""Every node kind of the IR against every backend: handled, or refused with a reason naming the node.

The kinds come from :data:`slt_deploy.ir.nodes.NODE_KINDS` (every concrete Node class registers
itself), the backends from :func:`slt_deploy.registry.handler_tables` (every target, every
exporter, the .slt format and the other code that dispatches on node kinds). Adding a node kind
fails exactly ``test_every_node_kind_is_handled_or_refused_everywhere``, which lists the backends
that lack a handler or a refusal for it.
"""

from __future__ import annotations

import pytest

from slt_deploy import registry
from slt_deploy.dispatch import HandlerTable, Refusal
from slt_deploy.errors import SltUnsupportedError
from slt_deploy.ir.nodes import NODE_KINDS

# Handler tables being created on other branches of the same issue; emptied as they land (the test
# fails when a listed table already exists, so the list cannot go stale).
PENDING_TABLES: set[str] = set()


# The IR's own kinds (test files define throwaway Node subclasses to exercise refusals; those register too).
IR_KINDS = {kind: cls for kind, cls in NODE_KINDS.items() if cls.__module__.startswith("slt_deploy.")}


def _table(path: str) -> HandlerTable | None:
    try:
        return registry._resolve(path)
    except (ImportError, AttributeError):
        return None


def test_the_ir_registers_its_node_kinds() -> None:
    assert {"input", "output", "linear", "conv2d", "sumpool2d", "avgpool2d", "maxpool2d", "flatten", "add", "lif",
            "li"} <= set(IR_KINDS)
    for kind, cls in IR_KINDS.items():
        assert cls.kind == kind


def test_every_backend_declares_a_handler_table() -> None:
    missing = {path for path in registry.handler_tables().values() if _table(path) is None}
    assert missing == PENDING_TABLES, f"handler tables that do not exist: {sorted(missing - PENDING_TABLES)}; " \
                                      f"landed (remove from PENDING_TABLES): {sorted(PENDING_TABLES - missing)}"


def test_every_node_kind_is_handled_or_refused_everywhere() -> None:
    lacking: dict[str, list[str]] = {}
    for backend, path in registry.handler_tables().items():
        table = _table(path)
        if table is None:
            continue
        for kind in IR_KINDS:
            if kind not in table:
                lacking.setdefault(kind, []).append(backend)
    assert not lacking, "node kinds without a handler or a refusal: " + "; ".join(
        f"{kind}: {', '.join(backends)}" for kind, backends in sorted(lacking.items()))


@pytest.mark.parametrize("backend", sorted(registry.handler_tables()))
def test_refusals_name_the_node_and_say_why(backend: str) -> None:
    table = _table(registry.handler_tables()[backend])
    if table is None:
        pytest.skip("table not landed yet")
    for kind, entry in table.items():
        if not isinstance(entry, Refusal):
            continue
        assert len(entry.reason) > 20, f"{backend}: refusal of {kind} gives no reason"
        node = object.__new__(NODE_KINDS[kind])
        object.__setattr__(node, "name", "the_node")
        with pytest.raises(SltUnsupportedError, match=r"node 'the_node'"):
            table.handler(node)


def test_an_unknown_kind_is_a_one_line_refusal_naming_the_node() -> None:
    table = HandlerTable("a test backend", {})
    node = object.__new__(NODE_KINDS["flatten"])
    object.__setattr__(node, "name", "flat7")
    with pytest.raises(SltUnsupportedError, match=r"node 'flat7': a test backend has no rule for node kind 'flatten'"):
        table.handler(node)
