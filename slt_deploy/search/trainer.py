"""Surrogate-gradient training with frozen masks and binary weights (torch + snnTorch).

Weights are trained as latent full-precision tensors. The weights a forward pass uses
(masked, or binary ``α·sign``: :mod:`.weights`) are computed from them per batch and
substituted with ``torch.func.functional_call``.

Every epoch shuffles with a generator seeded from ``(seed, key, epoch)``: a search resumed
from a checkpoint repeats exactly what an uninterrupted one would have done. Data parallel,
the same permutation is dealt out to the processes (:class:`ShardSampler`), so N processes
train on the same global batches as one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import DistributedSampler

from .distributed import host_device
from .model import clear_state, reset_state
from .sources import is_streamed
from .weights import (  # noqa: F401 - the names the search's modules and tests import from here
    Masks,
    apply_masks,
    binary_value,
    effective_weights,
    materialize,
    prune_masks,
    rewind_state,
    sparsity,
)


# ------------------------------------------------------------------ progress
class Progress:
    """Rich progress bars on a console (``None`` or not a terminal: no bars)."""

    def __init__(self, console: Any = None) -> None:
        self.console = console

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        if self.console is None:
            yield lambda: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        with RichProgress(TextColumn("   {task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                          disable=not getattr(self.console, "is_terminal", False)) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


# ------------------------------------------------------------------ trainer
def epoch_seed(seed: int, key: tuple[Any, ...], epoch: int) -> int:
    """A shuffling seed from the run seed, a stage key (strings/ints) and the epoch."""
    digest = hashlib.sha256(repr((int(seed), tuple(str(k) for k in key), int(epoch))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class ShardSampler(DistributedSampler):
    """:class:`~torch.utils.data.DistributedSampler` whose epoch order is the search's own
    seeded permutation ``randperm(n, seed=epoch_seed(seed, key, epoch))``.

    Padding and sharding are DistributedSampler's: the permutation is padded to a multiple
    of the number of processes by repeating its first indices, and rank r takes positions
    r, r + N, r + 2N, … So the r-th slice of every rank's k-th batch of ``B / N`` samples
    together form the k-th batch of ``B`` samples of one process: N processes train on the
    same global batches as one (up to the padding of the last one), and one process on
    exactly today's order.
    """

    def __init__(self, n: int, num_replicas: int, rank: int, seed: int, key: tuple[Any, ...]) -> None:
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.key = tuple(key)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, self.key, self.epoch))
        indices = torch.randperm(len(self.dataset), generator=gen).tolist()  # type: ignore[arg-type]
        padding = self.total_size - len(indices)
        if padding > 0:
            indices += (indices * -(-padding // len(indices)))[:padding]
        return iter(indices[self.rank:self.total_size:self.num_replicas])


def _ddp_options() -> frozenset[str]:
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    return frozenset(inspect.signature(DistributedDataParallel.__init__).parameters)


_DDP_OPTIONS = _ddp_options()


def loss_scale(model: nn.Module, timesteps: int) -> float | None:
    """The factor between the summed output and what the loss sees: ``1/T`` for networks
    whose loss takes the mean output over the steps (``readout_mean``), else None (the sum)."""
    return 1.0 / timesteps if getattr(model, "readout_mean", False) else None


def _split_weights(weights: Mapping[str, Any] | None, prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in (weights or {}).items() if k.startswith(prefix)}


def _unrolled(model: nn.Module, x: torch.Tensor, timesteps: int, weights: Mapping[str, Any] | None,
              spikes: bool) -> Iterator[torch.Tensor]:
    """The output of every step (membranes reset first): the input repeated every step
    (``direct``; a network with a ``stem`` runs it once), or frame t of ``x[:, t]`` (``spikes``)."""
    reset_state(model)
    stem = getattr(model, "stem", None)
    if stem is not None and not spikes:
        sw, bw = _split_weights(weights, "stem."), _split_weights(weights, "body.")
        static = functional_call(stem, sw, (x,)) if sw else stem(x)
        body = model.body  # type: ignore[union-attr]
        for _ in range(timesteps):
            yield functional_call(body, bw, (static,)) if bw else body(static)
        return
    for t in range(timesteps):
        step = x[:, t] if spikes else x
        yield functional_call(model, dict(weights), (step,)) if weights else model(step)


class _Unrolled(nn.Module):
    """One training forward pass: effective weights, then the summed output over T steps.

    A module of its own so that DistributedDataParallel sees exactly one forward per backward.
    """

    def __init__(self, net: nn.Module, timesteps: int, masks: Mapping[str, torch.Tensor] | None, binary: bool,
                 spikes: bool) -> None:
        super().__init__()
        self.net = net
        self.timesteps = timesteps
        self.masks = masks
        self.binary = binary
        self.spikes = spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = effective_weights(self.net, self.masks, self.binary)
        total: Any = 0
        for out in _unrolled(self.net, x, self.timesteps, weights, self.spikes):
            total = total + out
        return total


class _BatchSet(torch.utils.data.Dataset):
    """``dataset[index_array]`` is one batch (for DataLoader workers reading streamed data)."""

    def __init__(self, x: Any, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.x[idx])), torch.from_numpy(self.y[idx])


class Trainer:
    """Adam on the cross-entropy of the output summed over T steps (direct encoding), or of
    its mean for networks that ask for it; data parallel over ``world``.

    ``world`` (default: one process on the CPU) gives the device and the peers: batches of
    ``batch_size`` samples are split evenly over the processes (:class:`ShardSampler`), the
    network is wrapped in ``DistributedDataParallel`` (gradients averaged, so N processes
    take the steps one process would), and evaluation and BatchNorm recalibration split the
    data and sum the counts. ``amp`` (a torch dtype, CUDA only) runs the training forward
    pass under autocast; evaluation, recalibration and the exported ticket stay float32.
    ``workers`` DataLoader processes read streamed data (0: in this process).
    ``spikes``: samples are ``(T, *features)`` frames, frame t is the input of step t.
    """

    def __init__(self, lr: float = 2e-3, batch_size: int = 128, seed: int = 0, progress: Progress | None = None,
                 eval_batch: int = 512, *, world: Any = None, amp: torch.dtype | None = None, workers: int = 0,
                 spikes: bool = False) -> None:
        from .distributed import World

        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress or Progress(None)
        self.eval_batch = eval_batch
        self.world = world if world is not None else World()
        if self.batch_size % self.world.size:
            from .config import SltSearchError

            raise SltSearchError(f"--batch-size {batch_size} is the global batch; it must be a multiple of the "
                                 f"number of processes ({self.world.size})")
        self.amp = amp
        self.workers = workers
        self.spikes = spikes
        self.samples = 0  # training samples seen by this process since the last reset_throughput()
        self.train_seconds = 0.0  # ... and the seconds its training loops took
        self.alone_seconds = 0.0  # ... and the seconds they would take without gradient exchange (data parallel)
        self._alone: dict[tuple[Any, ...], float] = {}  # probe() results by (T, binary, frozen BatchNorm)

    @property
    def device(self) -> torch.device:
        return self.world.device

    def reset_throughput(self) -> None:
        """Start counting anew (the engine does at every round; the probes are repeated, so that
        a machine whose load changes gets a fresh reference)."""
        self.samples, self.train_seconds, self.alone_seconds = 0, 0.0, 0.0
        self._alone.clear()

    def _autocast(self) -> Any:
        if self.amp is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def _masks(self, masks: Mapping[str, torch.Tensor] | None) -> Mapping[str, torch.Tensor] | None:
        if not masks:
            return masks
        return {k: v.to(self.device) for k, v in masks.items()}

    def counts(self, model: nn.Module, x: torch.Tensor, timesteps: int,
               weights: Mapping[str, Any] | None = None) -> torch.Tensor:
        """The output summed over ``timesteps`` steps (spike counts of a spiking readout)."""
        total: Any = 0
        for out in _unrolled(model, x, timesteps, weights, self.spikes):
            total = total + out
        return total

    def cumulative_counts(self, model: nn.Module, x: torch.Tensor, timesteps: int,
                          weights: Mapping[str, Any] | None = None) -> list[torch.Tensor]:
        """Counts after 1, 2, …, ``timesteps`` steps (one run: step t does not depend on T)."""
        total: Any = 0
        seen = []
        for out in _unrolled(model, x, timesteps, weights, self.spikes):
            total = total + out
            seen.append(total)
        return seen

    def new_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    # ------------------------------------------------------------------ data
    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t if self.device.type == host_device else t.to(self.device, non_blocking=True)

    def _batches(self, x: Any, y: np.ndarray, indices: list[int], size: int
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        chunks = [np.asarray(indices[i:i + size], dtype=np.int64) for i in range(0, len(indices), size)]
        if self.workers > 0 and is_streamed(x):
            loader = torch.utils.data.DataLoader(
                _BatchSet(x, y), sampler=chunks, batch_size=None, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=2, persistent_workers=False)
            for xb, yb in loader:
                yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            return
        for idx in chunks:
            yield self._tensor(x[idx]), self._tensor(y[idx])

    def _shard(self, n: int) -> range:
        """This process's contiguous share of ``n`` samples (evaluation, recalibration)."""
        w = self.world
        return range(n * w.rank // w.size, n * (w.rank + 1) // w.size)

    def _module(self, model: nn.Module, timesteps: int, masks: Mapping[str, torch.Tensor] | None,
                binary: bool) -> nn.Module:
        net = _Unrolled(model, timesteps, masks, binary, self.spikes)
        if not self.world.distributed:
            return net
        from torch.nn.parallel import DistributedDataParallel

        clear_state(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # no buffer broadcast before every forward: BatchNorm statistics are recalibrated (and
        # combined over the ranks) after training, and neuron membranes are per-rank state
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_OPTIONS else \
            {"broadcast_buffers": False}
        return DistributedDataParallel(net, device_ids=ids, **no_sync)

    # ------------------------------------------------------------------ training
    def fit(self, model: nn.Module, x: Any, y: np.ndarray, epochs: int, timesteps: int,
            masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False, key: tuple[Any, ...] = (),
            description: str = "train", on_epoch: Callable[[int], None] | None = None,
            optimizer: torch.optim.Optimizer | None = None, first_epoch: int = 1, freeze_bn: bool = False) -> None:
        """Train ``epochs`` epochs; ``on_epoch(e)`` runs after epoch e (counted from ``first_epoch``).

        A network with BatchNorm gets its running statistics recomputed at the end
        (:meth:`recalibrate`), so that evaluation and the folded ticket see statistics of the
        final weights rather than of the last few batches. ``freeze_bn`` instead recomputes
        them first and then keeps BatchNorm in eval mode (fixed statistics, affine parameters
        still trained): training then optimises exactly the function the exported ticket
        computes, with BatchNorm folded.
        """
        masks = self._masks(masks)
        opt = optimizer if optimizer is not None else self.new_optimizer(model)
        loss_fn = nn.CrossEntropyLoss()
        scale = loss_scale(model, timesteps)
        per_rank = self.batch_size // self.world.size
        sampler = ShardSampler(len(x), self.world.size, self.world.rank, self.seed, key)
        batches = -(-sampler.num_samples // per_rank)
        scaler = torch.amp.GradScaler(self.device.type) if self.amp == torch.float16 else None
        apply_masks(model, masks)
        if freeze_bn:
            self.recalibrate(model, x, timesteps, masks, binary)
        alone = None
        if self.world.distributed:  # the reference of the scaling efficiency, once per kind of step
            probe_key = (timesteps, binary, freeze_bn)
            if probe_key not in self._alone:
                self._alone[probe_key] = self.probe(model, x, y, timesteps, masks, binary, freeze_bn=freeze_bn)
            alone = self._alone[probe_key]
        net = self._module(model, timesteps, masks, binary)
        with self.progress.task(description, epochs * batches) as advance:
            for epoch in range(first_epoch, first_epoch + epochs):
                model.train()
                if freeze_bn:
                    for m in model.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
                sampler.set_epoch(epoch)
                t0 = time.perf_counter()
                seen = self.samples
                for xb, yb in self._batches(x, y, list(sampler), per_rank):
                    opt.zero_grad(set_to_none=True)
                    with self._autocast():
                        out = net(xb)
                    if self.amp is not None:
                        out = out.float()
                    loss = loss_fn(out if scale is None else out * scale, yb)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                        scaler.update()
                    else:
                        loss.backward()
                        opt.step()
                    apply_masks(model, masks)
                    self.samples += len(yb)
                    advance()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.train_seconds += time.perf_counter() - t0
                if alone:
                    self.alone_seconds += (self.samples - seen) / alone
                if on_epoch is not None:
                    on_epoch(epoch)
        if not freeze_bn:
            self.recalibrate(model, x, timesteps, masks, binary)
        reset_state(model)

    def probe(self, model: nn.Module, x: Any, y: np.ndarray, timesteps: int,
              masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False, steps: int = 5,
              budget_s: float = 1.0, freeze_bn: bool = False) -> float:
        """Samples/s of this process training alone: the same steps as :meth:`fit` (batches of
        its share of the global batch, forward, backward, an Adam step, the masks) without the
        gradient exchange. The network, its BatchNorm statistics and gradients are left as they
        were. The reference of the scaling efficiency the engine reports."""
        masks = self._masks(masks)
        per_rank = self.batch_size // self.world.size
        net = _Unrolled(model, timesteps, masks, binary, self.spikes)
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        opt = self.new_optimizer(model)
        scale = loss_scale(model, timesteps)
        loss_fn = nn.CrossEntropyLoss()
        was_training = model.training
        model.train()
        if freeze_bn:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        times: list[float] = []
        spent = 0.0
        for i in range(steps + 1):
            t0 = time.perf_counter()
            rows = (np.arange(per_rank) + (self.world.rank + i * self.world.size) * per_rank) % len(x)
            xb, yb = self._tensor(x[rows]), self._tensor(y[rows])
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                out = net(xb)
            loss = loss_fn(out.float() if scale is None else out.float() * scale, yb)
            loss.backward()
            opt.step()
            apply_masks(model, masks)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            dt = time.perf_counter() - t0
            spent += dt
            if i > 0:  # the first step warms up
                times.append(dt)
            if i >= 3 and spent > budget_s:
                break
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
        reset_state(model)
        model.train(was_training)
        return per_rank / float(np.median(times))

    @torch.no_grad()
    def recalibrate(self, model: nn.Module, x: Any, timesteps: int,
                    masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False) -> None:
        """Set BatchNorm running statistics to the plain average of the batch statistics over
        ``x`` (in order, ``eval_batch`` samples at a time) and every time step, with the current
        effective weights. Without it the exponential average (momentum 0.1, applied T times
        per batch) is dominated by the last, possibly short, batch of an epoch. Data parallel:
        each process averages over its share, then the averages are combined, weighted by
        their number of batches."""
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        masks = self._masks(masks)
        was_training = model.training
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        weights = effective_weights(model, masks, binary) if (masks or binary) else None
        rows = self._shard(len(x)) if self.world.distributed else range(len(x))
        for start in range(rows.start, rows.stop, self.eval_batch):
            self.counts(model, self._tensor(x[start:min(start + self.eval_batch, rows.stop)]), timesteps, weights)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        if self.world.distributed:
            for m in norms:
                n = m.num_batches_tracked.to(torch.float64)
                parts = torch.cat([m.running_mean.double() * n, m.running_var.double() * n, n.reshape(1)])
                self.world.all_reduce_(parts)
                total = parts[-1]
                c = m.running_mean.numel()
                if total > 0:
                    m.running_mean.copy_(parts[:c] / total)
                    m.running_var.copy_(parts[c:2 * c] / total)
                m.num_batches_tracked.fill_(int(total.item()))
        reset_state(model)
        model.train(was_training)

    @torch.no_grad()
    def predict(self, model: nn.Module, x: Any, timesteps: int,
                masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False,
                rows: range | None = None) -> np.ndarray:
        """Predicted classes of ``x`` (or of ``x[rows]``), ``eval_batch`` samples at a time."""
        masks = self._masks(masks)
        was_training = model.training
        model.eval()
        weights = effective_weights(model, masks, binary) if (masks or binary) else None
        rows = range(len(x)) if rows is None else rows
        preds = []
        for start in range(rows.start, rows.stop, self.eval_batch):
            xb = self._tensor(x[start:min(start + self.eval_batch, rows.stop)])
            preds.append(self.counts(model, xb, timesteps, weights).argmax(dim=1).cpu())
        reset_state(model)
        model.train(was_training)
        return torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)

    def accuracy(self, model: nn.Module, x: Any, y: np.ndarray, timesteps: int,
                 masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False, shard: bool = True) -> float:
        """Test accuracy; data parallel (``shard``): every process predicts its share, the counts are summed."""
        if not (shard and self.world.distributed):
            return float((self.predict(model, x, timesteps, masks, binary) == y).mean())
        rows = self._shard(len(x))
        pred = self.predict(model, x, timesteps, masks, binary, rows=rows)
        correct = torch.tensor([float((pred == y[rows.start:rows.stop]).sum())], dtype=torch.float64)
        self.world.all_reduce_(correct)
        return float(correct.item()) / len(x)

    @torch.no_grad()
    def timestep_kl(self, model: nn.Module, x: Any, timesteps: int,
                    masks: Mapping[str, torch.Tensor] | None = None, binary: bool = False) -> list[float]:
        """``KL(p_T ‖ p_{T'})`` for ``T' = 1 … T − 1`` on the batch ``x`` (batch mean).

        ``p_{T'} = softmax(c_{T'} · T / T' · s)``: the output rate over the first T' steps, on
        the scale of the T-step output the loss uses (``s`` = 1 for summed outputs, ``1/T``
        for networks whose loss takes the mean), so T' = T is the trained output distribution.
        """
        masks = self._masks(masks)
        was_training = model.training
        model.eval()
        weights = effective_weights(model, masks, binary) if (masks or binary) else None
        seen = self.cumulative_counts(model, self._tensor(x), timesteps, weights)
        reset_state(model)
        model.train(was_training)
        scale = loss_scale(model, timesteps)
        top = seen[-1].double().cpu()
        log_p = torch.log_softmax(top if scale is None else top * scale, dim=1)
        out = []
        for t in range(1, timesteps):
            c = seen[t - 1].double().cpu() * (timesteps / t)
            log_q = torch.log_softmax(c if scale is None else c * scale, dim=1)
            kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
            out.append(max(float(kl), 0.0))
        return out
