"""Synapse layers (Linear, Conv2d): kernel choice, exactness certificate, rounding once.

``I = float32(S) · scale + bias`` (binary/int8) or ``float32(S) + bias`` (float32 weights),
where ``S`` is the exact synaptic sum (docs/semantics.md). The kernels return ``S``
accumulated in int64/float64; it is exact

- always for spike inputs with binary or int8 weights (integer sums), and
- under the certificate of :mod:`slt_deploy.exact` for analog inputs and float weights.

Batches the cheap lattice certificate does not cover (ordinary float data: standardized
features, images/255, float weights) go through :func:`slt_deploy.exact.exact_matmul`:
float64 BLAS sums accepted by the rigorous error-bound test, the rare ambiguous sums
recomputed exactly, so the result never depends on the order of accumulation.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from slt_deploy import exact
from slt_deploy.ir.nodes import Conv2d, Linear

from . import costmodel
from .geometry import ConvGeometry
from .stores import ConvPlaneStore, Coo, CscStore, CsrStore, PlaneStore, weight_scale
from .stores_conv import ConvEventStore
from .values import Value

DEFAULT_RATE = 0.15  # prior input spike rate where none can be measured (recurrent steps)


class SynapseOp:
    """One Linear or Conv2d layer. Stores are built on first use, for the chosen kernel only."""

    def __init__(self, node: Linear | Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 backend: str, kernels: Any, forced: str | None, planes: PlaneStore | None = None) -> None:
        w = node.weights
        self.name = node.name
        self.kind = w.kind
        self.conv = isinstance(node, Conv2d)
        self.geom = ConvGeometry.of(node, in_shape, out_shape) if self.conv else None
        self.out_shape = out_shape
        self.o = int(w.mask.shape[0])
        self.k = int(np.prod(w.mask.shape[1:]))
        self.backend, self.kernels, self.forced = backend, kernels, forced
        self.scale = weight_scale(w)
        self.bias = None if node.bias is None else np.ascontiguousarray(node.bias, dtype=np.float32)
        self._source: Any = w  # IR weights until every store we need exists
        coo = Coo.from_weights(w)
        self.nnz = coo.nnz
        self._weight_certificate(coo)
        self.stores: dict[str, Any] = {}
        self._mapped_planes = planes  # zero-copy planes from a memory-mapped .slt, used if chosen
        self.choice: dict[bool, str] = {}  # binary input? -> kernel
        self._plans: dict[bool, tuple[Any, Any, bool]] = {}
        self._dense: np.ndarray | None = None  # float64 weights for the checked float path (numpy, conv)
        self._csr: CsrStore | None = None  # CSR codes for the checked float path (numba, linear)
        self._conv_taps: Any = None  # decoded kept taps for the checked float path (numba, conv)
        self._dense_rows: list[exact.WeightRows] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ certificate
    def _weight_certificate(self, coo: Coo) -> None:
        """Per output row: lattice exponent ``w_grid`` and max ``|code|`` ``w_max`` of kept weights.

        Integer codes (binary, int8) sit on the 2^0 lattice and one max for the layer is
        enough (broadcast views, no memory); float weights keep per-row arrays, and rows
        whose ``Σ|w|`` passes the certificate sum spikes exactly in any order.
        """
        o = self.o
        vals = np.abs(coo.codes.astype(np.float64))
        self.w_max_all = float(vals.max(initial=0.0))
        if self.kind == "float32":
            self.w_max = np.zeros(o)
            np.maximum.at(self.w_max, coo.rows, vals)
            self.w_grid = np.full(o, exact.NO_GRID, dtype=np.int64)
            np.minimum.at(self.w_grid, coo.rows, exact.grid_exponent(coo.codes.astype(np.float64)))
            w_sum = np.bincount(coo.rows, weights=vals, minlength=o).astype(np.float64)
            self.float_rows_ok = exact.certified(w_sum, self.w_grid)
            self.certificate_bytes = int(self.w_max.nbytes + self.w_grid.nbytes + self.float_rows_ok.nbytes)
        else:
            self.w_max = np.broadcast_to(np.float64(self.w_max_all), (o,))
            self.w_grid = np.broadcast_to(np.int64(0), (o,))
            self.float_rows_ok = np.broadcast_to(True, (o,))
            self.certificate_bytes = 0
        self.float_rows_all_ok = bool(self.float_rows_ok.all())
        self.w_grid_min = int(self.w_grid.min(initial=exact.NO_GRID))

    # ------------------------------------------------------------------ stores
    @property
    def dense(self) -> bool:
        return self.nnz == self.o * self.k

    def _coo(self) -> Coo:
        if self._source is not None:
            return Coo.from_weights(self._source)
        return next(iter(self.stores.values())).to_coo()

    def _store(self, kernel: str) -> Any:
        family = self._family(kernel)
        if family not in self.stores:
            with self._lock:
                if family not in self.stores:
                    coo = None if (family == "planes" and self._mapped_planes is not None) else self._coo()
                    g = self.geom
                    if family == "planes" and self._mapped_planes is not None:
                        self.stores[family] = self._mapped_planes
                    elif family == "planes":
                        self.stores[family] = PlaneStore.from_coo(coo)
                    elif family == "conv-event":
                        self.stores[family] = ConvEventStore.from_coo(coo, g)
                    elif family == "conv-planes":
                        self.stores[family] = ConvPlaneStore.from_coo(coo, g.cg, g.taps)
                    elif family == "csc":
                        self.stores[family] = CscStore.from_coo(coo, g.groups if g else 1, coded=self.conv)
                    else:
                        self.stores[family] = CsrStore.from_coo(coo)
        return self.stores[family]

    def _family(self, kernel: str) -> str:
        if kernel == "popcount":
            return "conv-planes" if self.conv else "planes"
        if kernel == "event":
            return "conv-event" if (self.conv and self.backend == "numba") else "csc"
        return "planes" if (self.kind == "binary" and not self.conv) else "csr"

    def release_source(self) -> None:
        """Drop the IR weights and unused mapped planes once the stores exist."""
        self._source = None
        self._mapped_planes = None

    @property
    def nbytes(self) -> int:
        """Bytes held for this layer: stores (anonymous memory), scale, bias, certificate arrays."""
        extra = sum(a.nbytes for a in (self.scale, self.bias) if a is not None) + self.certificate_bytes
        if self._dense is not None:
            extra += self._dense.nbytes + sum(r.abs.nbytes for r in self._dense_rows)
        if self._csr is not None:
            extra += self._csr.nbytes
        if self._conv_taps is not None:
            extra += self._conv_taps.nbytes
        return int(sum(s.nbytes for s in self.stores.values()) + extra)

    @property
    def mapped_bytes(self) -> int:
        """Bytes of stores mapped from the .slt file (page cache, shared)."""
        return int(sum(getattr(s, "mapped_bytes", 0) for s in self.stores.values()))

    def kernel_for(self, binary: bool, rate: float, rows: int = 1) -> str:
        if binary not in self.choice:
            g = self.geom
            if self.conv:
                shape = dict(o=g.og, k=g.k, nnz=self.nnz // g.groups, rate=rate, dense=self.dense, rows=rows * g.groups,
                             backend=self.backend, pixels_out=g.ho * g.wo, pixels_in=g.h * g.w, taps=g.taps,
                             analog=not binary)
            else:
                shape = dict(o=self.o, k=self.k, nnz=self.nnz, rate=rate, dense=self.dense, rows=rows,
                             backend=self.backend,
                             analog=not binary)
            self.choice[binary] = costmodel.choose(binary, self.kind, self.forced, conv=self.conv, **shape)
        return self.choice[binary]

    # ------------------------------------------------------------------ forward
    def _plan(self, x: Value, rows: np.ndarray) -> tuple[Any, Any, bool]:
        """(kernel function, store, takes uint8 spikes) for this input kind; chosen on first use."""
        rate = float(np.count_nonzero(rows)) / max(1, rows.size)  # spikes, or nonzero analog inputs
        kernel = self.kernel_for(x.binary, rate if x.rate_known else DEFAULT_RATE, rows.shape[0])
        kn = self.kernels
        fn = {("popcount", False): kn.lin_popcount, ("event", False): kn.lin_event, ("gather", False): kn.lin_gather,
              ("popcount", True): kn.conv_popcount, ("event", True): kn.conv_event,
              ("gather", True): kn.conv_gather}[(kernel, self.conv)]
        plan = (fn, self._store(kernel), x.binary and kernel != "gather")
        self._plans[x.binary] = plan
        return plan

    def forward(self, x: Value) -> Value:
        """Synaptic currents (float32) for every row of ``x`` (same static-ness)."""
        data = x.data
        lead = data.shape[:2]
        rows = data.reshape((lead[0] * lead[1], *data.shape[2:])) if self.conv else data.reshape(-1, self.k)
        plan = self._plans.get(x.binary) or self._plan(x, rows)
        fn, store, takes_spikes = plan
        inp = rows if takes_spikes else rows.astype(np.float64)
        if x.binary and self.float_rows_all_ok:
            bad = None  # spike input, integer codes (or certified float rows): every sum is exact
        else:
            bad = self._uncertified(inp, x.binary)
        if bad is None:  # scale and bias fused into the kernel
            if self.conv and takes_spikes and isinstance(store, ConvEventStore):
                out = fn(inp, store, self.geom, self.scale, self.bias, lead[0])  # steps: SWAR over a sample's steps
            elif self.conv:
                out = fn(inp, store, self.geom, self.scale, self.bias)
            elif takes_spikes and fn is self.kernels.lin_event:
                out = fn(inp, store, self.scale, self.bias, lead[0])
            else:
                out = fn(inp, store, self.scale, self.bias)
            return Value(out.reshape(*lead, *self.out_shape), x.static, False, x.rate_known)
        out = self._checked_sums(inp)
        shape = (1, -1, 1, 1) if self.conv else (1, -1)
        if self.scale is not None:
            out = out * self.scale.reshape(shape)
        if self.bias is not None:
            out = out + self.bias.reshape(shape)
        return Value(out.reshape(*lead, *self.out_shape), x.static, False, x.rate_known)

    # ------------------------------------------------------------------ exact fallback
    def _uncertified(self, inp: np.ndarray, binary: bool) -> np.ndarray | None:
        """``(R, O)`` mask of sums the certificate does not cover, or None when all are exact.

        Spike input: integer codes always sum exactly; float weights per row (static).
        Analog input: per row ``Σ|x| · max|code| < 2^(grid(x) + grid(w) + 52)``, first
        checked once per input row against the worst output row.
        """
        if binary:
            return np.broadcast_to(~self.float_rows_ok[None, :], (inp.shape[0], self.o))
        flat = inp.reshape(inp.shape[0], -1)
        if self.kernels.rows_certified(flat, self.w_max_all, self.w_grid_min):
            return None
        if self.conv and self.backend == "numba":  # the checked conv tests every sum itself
            return np.ones((inp.shape[0], self.o), bool)
        grid, total = self.kernels.row_stats(flat)
        bad = ~exact.certified(total[:, None] * self.w_max[None, :], grid[:, None] + self.w_grid[None, :])
        return bad if bad.any() else None

    def _checked_sums(self, inp: np.ndarray) -> np.ndarray:
        """Sums rounded once to float32 by :func:`slt_deploy.exact.exact_matmul` (BLAS in float64,
        error-bound and lattice tests, exact slow path for the rare ambiguous sums)."""
        x = np.asarray(inp, dtype=np.float64)
        if self.backend == "numba":
            return self._checked_conv(x) if self.conv else self._checked_sparse(x.reshape(x.shape[0], -1))
        dense, rows = self._dense64()
        if not self.conv:
            return exact.exact_matmul(x.reshape(x.shape[0], -1), dense, rows=rows[0])
        from .kernels_numpy import im2col

        g, r = self.geom, x.shape[0]
        out = np.empty((r, g.o, g.ho, g.wo), np.float32)
        for grp in range(g.groups):
            sums = exact.exact_matmul(im2col(x, g, grp), dense[grp * g.og:(grp + 1) * g.og], rows=rows[grp])
            out[:, grp * g.og:(grp + 1) * g.og] = sums.reshape(r, g.ho, g.wo, g.og).transpose(0, 3, 1, 2)
        return out

    def _csr_store(self) -> CsrStore:
        if self._csr is None:
            with self._lock:
                if self._csr is None:
                    self._csr = CsrStore.from_coo(self._coo())
        return self._csr

    def _checked_conv(self, x: np.ndarray) -> np.ndarray:
        """numba conv: sparse-tap gather with the in-kernel error-bound test (:mod:`.numba_conv_checked`)."""
        from . import numba_conv_checked

        if self._conv_taps is None:
            taps = numba_conv_checked.ConvTaps.of(self._csr_store(), self.geom)
            with self._lock:
                self._conv_taps, self._csr = taps, None
        return numba_conv_checked.conv_checked(x, self._conv_taps, self.geom)

    def _checked_sparse(self, x: np.ndarray) -> np.ndarray:
        """numba: CSR sums with the in-kernel tests; undecided sums on the compiled exact path."""
        from . import numba_checked

        out, slow = numba_checked.lin_checked(x, self._csr_store())
        if slow:
            exact.count_slow_path(slow)
        return out

    def _dense64(self) -> tuple[np.ndarray, list[exact.WeightRows]]:
        """Dense float64 ``(O, K)`` codes or float weights and the per-group :class:`WeightRows`,
        built once, only when the checked path runs."""
        if self._dense is None:
            with self._lock:
                if self._dense is None:
                    coo = self._coo()
                    dense = np.zeros((self.o, self.k), np.float64)
                    dense[coo.rows, coo.cols] = coo.codes.astype(np.float64)
                    groups = self.geom.groups if self.conv else 1
                    og = self.o // groups
                    self._dense_rows = [exact.weight_rows(dense[g * og:(g + 1) * og]) for g in range(groups)]
                    self._dense = dense
        return self._dense, self._dense_rows
