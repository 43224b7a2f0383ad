"""Linear-time wiring of a foreign NIR graph: which edges are recurrent, and a schedule.

NIR graphs state edges but not which of them close a cycle; slt marks an edge recurrent
(its value is the previous step's) exactly when it leaves a neuron layer and closes a cycle
among the edges already kept. With the edges ``e_1 .. e_m`` in file order:

1. Edges leaving non-neuron nodes form the graph ``G0``; an edge of ``G0`` on a cycle of ``G0``
   (its ends in one strongly connected component, or a self-loop) is refused: such a cycle holds
   no state. Tarjan's algorithm, O(V + E).
2. Edges leaving neurons are taken in file order: ``s -> d`` is recurrent iff ``d`` already reaches
   ``s`` in the kept graph (``s == d`` included), else it is kept. The kept graph stays acyclic, so
   it has a topological order ``ord``; ``ord(s) < ord(d)`` proves ``d`` cannot reach ``s`` (O(1)),
   otherwise a search bounded to ``ord(d) <= ord(v) <= ord(s)`` answers and, if the edge is kept,
   the order is repaired over that region only (Pearce & Kelly, "A dynamic topological sort
   algorithm for directed acyclic graphs", JEA 2006).

This gives the same marks as one breadth-first search per edge (the previous implementation,
O(E·(V + E)): 16,000 nodes took 29 s), in O(V + E) for graphs in file order (every exporter
writes them so) and bounded by the affected regions otherwise.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence


def non_neuron_cycle_edge(nodes: Iterable[str], edges: Sequence[tuple[str, str]],
                          is_neuron: dict[str, bool]) -> tuple[str, str] | None:
    """The first edge (file order) leaving a non-neuron node that lies on a cycle of such edges."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        if not is_neuron[s]:
            succ[s].append(d)
    comp = _components(succ)
    return next(((s, d) for s, d in edges if not is_neuron[s] and (s == d or comp[s] == comp[d])), None)


def _components(succ: dict[str, list[str]]) -> dict[str, int]:
    """Strongly connected component id of every node (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in succ:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            children = succ[v]
            if i < len(children):
                work.append((v, i + 1))
                w = children[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp[w] = index[v]
                    if w == v:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return comp


class _Dag:
    """A DAG with a maintained topological order (Pearce-Kelly insertion)."""

    def __init__(self, nodes: list[str], edges: Sequence[tuple[str, str]], flow: dict[str, int]) -> None:
        self.succ: dict[str, list[str]] = {n: [] for n in nodes}
        self.pred: dict[str, list[str]] = {n: [] for n in nodes}
        for s, d in edges:
            self.succ[s].append(d)
            self.pred[d].append(s)
        # Kahn's algorithm on these edges, ties broken by the flow of the whole graph (``flow``: the
        # breadth-first distance from the inputs): almost every later edge then already points
        # forward (the O(1) case below), whatever the order of the file's nodes and edges
        position = flow
        indeg = {n: len(self.pred[n]) for n in nodes}
        by_rank = sorted(nodes, key=position.__getitem__)
        ready = [position[n] for n in nodes if indeg[n] == 0]
        heapq.heapify(ready)
        self.ord: dict[str, int] = {}
        while ready:
            n = by_rank[heapq.heappop(ready)]
            self.ord[n] = len(self.ord)
            for c in self.succ[n]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(ready, position[c])

    def _reach(self, start: str, nexts: dict[str, list[str]], lo: int, hi: int, goal: str | None = None) -> list[str]:
        """Nodes reachable from ``start`` through nodes with ``lo <= ord <= hi``; stops at ``goal``."""
        seen, todo, order = {start}, [start], self.ord
        while todo:
            for c in nexts[todo.pop()]:
                if c not in seen and lo <= order[c] <= hi:
                    if c == goal:
                        return [c]
                    seen.add(c)
                    todo.append(c)
        return list(seen)

    def add_unless_cycle(self, s: str, d: str) -> bool:
        """Add ``s -> d`` unless ``d`` reaches ``s`` (or ``s == d``); True when it was added."""
        if s == d:
            return False
        lo, hi = self.ord[d], self.ord[s]
        if hi < lo:  # s before d: d cannot reach s
            self._link(s, d)
            return True
        forward = self._reach(d, self.succ, lo, hi, goal=s)
        if s in forward:
            return False
        backward = self._reach(s, self.pred, lo, hi)
        slots = sorted(self.ord[v] for v in (*backward, *forward))
        moved = sorted(backward, key=self.ord.__getitem__) + sorted(forward, key=self.ord.__getitem__)
        for v, slot in zip(moved, slots, strict=True):
            self.ord[v] = slot
        self._link(s, d)
        return True

    def _link(self, s: str, d: str) -> None:
        self.succ[s].append(d)
        self.pred[d].append(s)


def _flow(nodes: list[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Rank of every node by (breadth-first distance over all edges from the nodes without incoming
    edges, file position): the graph's flow, whatever the order of the file's nodes and edges."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    has_in: set[str] = set()
    for s, d in edges:
        succ[s].append(d)
        has_in.add(d)
    dist: dict[str, int] = {}
    queue = deque(n for n in nodes if n not in has_in)
    for n in queue:
        dist[n] = 0
    for root in [None, *nodes]:  # None: the sources above; then any node not reached yet
        if root is not None:
            if root in dist:
                continue
            dist[root] = max(dist.values(), default=-1) + 1
            queue.append(root)
        while queue:
            v = queue.popleft()
            for w in succ[v]:
                if w not in dist:
                    dist[w] = dist[v] + 1
                    queue.append(w)
    position = {n: i for i, n in enumerate(nodes)}
    return {n: r for r, n in enumerate(sorted(nodes, key=lambda n: (dist[n], position[n])))}


def mark_recurrent(nodes: Sequence[str], edges: Sequence[tuple[str, str]],
                   is_neuron: dict[str, bool]) -> list[tuple[str, str, bool]]:
    """``(src, dst, recurrent)`` for every edge, in file order (rule 2 of the module doc);
    the non-neuron edges must already be acyclic (:func:`non_neuron_cycle_edge` is None)."""
    dag = _Dag(list(nodes), [(s, d) for s, d in edges if not is_neuron[s]], _flow(list(nodes), edges))
    return [(s, d, is_neuron[s] and not dag.add_unless_cycle(s, d)) for s, d in edges]


def first_duplicate(edges: Iterable[tuple[str, str, bool]]) -> tuple[str, str] | None:
    seen: set[tuple[str, str]] = set()
    for s, d, _ in edges:
        if (s, d) in seen:
            return (s, d)
        seen.add((s, d))
    return None
