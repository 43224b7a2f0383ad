"""What a ticket search is asked to do: :class:`SearchConfig`, validated on construction.

Every option that changes the result is a field here; a checkpointed search resumes only
with the same configuration (see :mod:`slt_deploy.search.checkpoint`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import SltError
from ..ir.graph import MAX_TIMESTEPS

METHODS = ("imp", "et", "eb")  # the built-in methods; plug-ins register more (search/methods/__init__.py)
ARCHS = ("mlp", "conv", "vgg16", "resnet19", "spikformer")
BINARY_FROM = ("ticket", "scratch")
BINARY_SCOPES = ("all", "convpep")
BINARY_KEEP = ("last", "best-train")
ENCODINGS = ("direct", "spikes")
# upper bounds: a count beyond these is a typo, not a search (10^23 epochs ran for ever, 2^64 seeds overflowed torch)
MAX_ROUNDS = 1_000
MAX_EPOCHS = 100_000
MAX_SEED = 2**63 - 1
MAX_WIDTH = 65_536      # --hidden (the spikformer embedding: MAX_EMBED)
MAX_EMBED = 1_024
MAX_CHANNELS = 2_048
MAX_BATCH = 1 << 24
MAX_RATE = 1e3  # learning rates, beta, threshold: Adam overflowed float at --lr 1e308


class SltSearchError(SltError, ValueError):
    """A ticket search cannot run as asked: unknown method, an option out of range, a
    checkpoint folder that does not match the command (one-line message, exit 2 in the CLI)."""


@dataclass(frozen=True)
class SearchConfig:
    """A ticket search (defaults: the digits examples).

    - ``method``: ``imp`` (iterative magnitude pruning, late rewinding), ``et`` (Early-Time:
      IMP at a smaller T' chosen by the KL rule, final ticket trained at T), ``eb``
      (Early-Bird: one-shot mask at ``target_sparsity`` once successive masks stop moving).
    - ``rounds`` / ``prune_fraction``: IMP and ET prune to the ladder ``1 − (1 − f)^r``
      after round r; EB's target sparsity defaults to the same ``1 − (1 − f)^rounds``.
    - ``epochs``: epochs of every training run (dense, each round, the final ticket);
      EB searches for at most ``eb_max_epochs`` epochs (default: the larger of ``epochs``
      and ``eb_window``).
    - ``arch``: ``mlp``, ``conv`` (snnTorch, for small inputs) or the ECCV 2022 networks
      ``vgg16`` / ``resnet19`` (SpikingJelly-style LIF, CIFAR layout) built at ``width``
      times the paper's channel counts, or ``spikformer`` (:mod:`.spikformer`: ConvPEP, spiking
      self-attention, snnTorch Leaky; ``hidden`` is its embedding, 32 when left at 128).
    - ``token_keep`` (spikformer): fraction of the tokens kept after the patch embedding, the
      patches of largest mean input intensity on the training set (:func:`.spikformer.important_tokens`).
    - ``encoding``: ``direct`` (the analog sample is the input at every step) or ``spikes``
      (every sample is ``(T, *features)``: one frame, e.g. binned events, per step).
    - ``lr`` (Adam; default 5e-3 for ``mlp``, 2e-3 for ``conv``, 1e-3 for ``vgg16``/``resnet19``),
      ``batch_size`` (the global batch: split evenly over the data-parallel processes).
    - ``rewind_epoch``: late rewinding to the weights after this many dense epochs
      (0 rewinds to the initialisation).
    - ``binary``: kept weights become ``α[o]·sign(w)`` (α = mean |w| of the kept weights of
      output channel o) with a straight-through estimator; ``binary_from="ticket"``
      fine-tunes the full-precision ticket for ``binary_epochs`` (default ``epochs``) at the
      smaller learning rate ``binary_lr`` (sign flips make binary training jumpy),
      ``"scratch"`` trains binary weights throughout the search (at ``lr``).
      ``binary_scope``: ``"all"`` binarizes every weight layer; ``"convpep"`` (spikformer,
      ``binary_from="ticket"``) only the convolutional patch embedding, ``pep`` and ``rpe``:
      MultiSp's "sparse and binarized ConvPEP weights", the blocks and head keep their sparse
      float32 weights.
      ``binary_keep``: which epoch of the binary fine-tune the ticket keeps: ``"last"``, or
      ``"best-train"``, the epoch with the best *training-set* accuracy (binary weights, one
      extra pass over the training set per epoch; the test set is never looked at). Binary
      spiking nets swing by several points from epoch to epoch even at small learning rates
      (a few sign flips move many spikes), so the last epoch is a lottery.
    """

    method: str = "imp"
    data: str = "digits"
    arch: str = "mlp"
    rounds: int = 3
    epochs: int = 8
    prune_fraction: float = 0.25
    target_sparsity: float | None = None
    timesteps: int = 8
    binary: bool = False
    binary_from: str = "ticket"
    binary_epochs: int | None = None
    binary_lr: float = 1e-3
    binary_scope: str = "all"
    binary_keep: str = "last"
    seed: int = 0
    split_seed: int = 0
    hidden: int = 128
    channels: tuple[int, int] = (32, 64)
    beta: float = 0.875
    threshold: float = 1.0
    lr: float | None = None
    batch_size: int = 64
    rewind_epoch: int = 1
    et_threshold: float = 0.6
    eb_threshold: float = 0.02
    eb_window: int = 5
    eb_max_epochs: int | None = None
    width: float = 1.0
    token_keep: float = 1.0
    encoding: str = "direct"

    def __post_init__(self) -> None:
        from .methods import method_names

        if self.method not in method_names():
            raise SltSearchError(f"--method: unknown search method {self.method!r}; choose one of "
                                 f"{', '.join(method_names())}")
        if self.arch not in ARCHS:
            raise SltSearchError(f"--arch: unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.encoding not in ENCODINGS:
            raise SltSearchError(f"--encoding: unknown input encoding {self.encoding!r}; choose one of "
                                 f"{', '.join(ENCODINGS)}")
        w = self.width
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or not 0 < w <= 8:
            raise SltSearchError(f"--width must be a number in (0, 8], got {w!r}")
        tk = self.token_keep
        if isinstance(tk, bool) or not isinstance(tk, (int, float)) or not 0 < tk <= 1:
            raise SltSearchError(f"--token-keep must be a fraction in (0, 1], got {tk!r}")
        if tk != 1 and self.arch != "spikformer":
            raise SltSearchError("--token-keep prunes the tokens of --arch spikformer only")
        if w != 1 and self.arch in ("mlp", "conv"):
            raise SltSearchError(f"--width scales vgg16 and resnet19; size the {self.arch} net with "
                                 + ("--hidden" if self.arch == "mlp" else "--channels"))
        if self.binary_from not in BINARY_FROM:
            raise SltSearchError(f"--binary-from must be one of {', '.join(BINARY_FROM)}, got {self.binary_from!r}")
        if self.binary_keep not in BINARY_KEEP:
            raise SltSearchError(f"--binary-keep must be one of {', '.join(BINARY_KEEP)}, got {self.binary_keep!r}")
        if self.binary_scope not in BINARY_SCOPES:
            raise SltSearchError(f"--binary-scope must be one of {', '.join(BINARY_SCOPES)}, got {self.binary_scope!r}")
        if self.binary_scope == "convpep" and (self.arch != "spikformer" or self.binary_from != "ticket"):
            raise SltSearchError("--binary-scope convpep binarizes the patch embedding of --arch spikformer, "
                                 "fine-tuned from the ticket (--binary-from ticket)")
        _int(self.rounds, "--rounds", 1, MAX_ROUNDS)
        _int(self.epochs, "--epochs", 1, MAX_EPOCHS)
        _int(self.timesteps, "-T/--timesteps", 1, MAX_TIMESTEPS)
        _int(self.seed, "--seed", 0, MAX_SEED)
        _int(self.split_seed, "--split-seed", 0, MAX_SEED)
        _int(self.hidden, "--hidden", 1, MAX_EMBED if self.arch == "spikformer" and self.hidden != 128 else MAX_WIDTH)
        _int(self.batch_size, "--batch-size", 1, MAX_BATCH)
        _int(self.rewind_epoch, "--rewind-epoch", 0, MAX_EPOCHS)
        _int(self.eb_window, "--eb-window", 2, MAX_EPOCHS)
        if self.binary_epochs is not None:
            _int(self.binary_epochs, "--binary-epochs", 1, MAX_EPOCHS)
        if self.eb_max_epochs is not None:
            _int(self.eb_max_epochs, "--eb-max-epochs", 1, MAX_EPOCHS)
        if len(self.channels) != 2:
            raise SltSearchError(f"--channels must be two conv widths, got {self.channels!r}")
        for c in self.channels:
            _int(c, "--channels", 1, MAX_CHANNELS)
        _open_unit(self.prune_fraction, "--prune-fraction")
        if self.target_sparsity is not None:
            if self.method != "eb":
                raise SltSearchError(
                    f"--target-sparsity is for --method eb; {self.method} prunes to the ladder 1-(1-f)^rounds "
                    "(set --rounds and --prune-fraction)")
            _open_unit(self.target_sparsity, "--target-sparsity")
        if self.rewind_epoch > self.epochs:
            raise SltSearchError(f"--rewind-epoch {self.rewind_epoch} is past the {self.epochs} training epochs "
                                 "(--epochs)")
        if self.method == "et" and self.timesteps < 2:
            raise SltSearchError("the Early-Time ticket needs -T/--timesteps >= 2 (it searches at a smaller T')")
        for value, what in ((self.learning_rate, "--lr (learning rate)"), (self.binary_lr, "--binary-lr"),
                            (self.beta, "beta"), (self.threshold, "threshold")):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= MAX_RATE:
                raise SltSearchError(f"{what} must be a number in (0, {MAX_RATE:g}], got {value!r}")
        if self.beta > 1:
            raise SltSearchError(f"beta must be in (0, 1] (1 is IF), got {self.beta}")
        _open_unit(self.et_threshold, "--et-threshold", upper_closed=True)
        _open_unit(self.eb_threshold, "--eb-threshold", upper_closed=True)

    # ------------------------------------------------------------------ derived
    @property
    def sparsity_goal(self) -> float:
        """The final sparsity asked for: the ladder after ``rounds``, or EB's target."""
        if self.method == "eb" and self.target_sparsity is not None:
            return float(self.target_sparsity)
        return ladder(self.rounds, self.prune_fraction)

    @property
    def learning_rate(self) -> float:
        """``lr``, or by default 5e-3 for the MLP, 2e-3 for the conv net (whose BatchNorm'd
        spiking layers train unstably at the MLP's rate) and 1e-3 for the deep networks."""
        if self.lr is not None:
            return self.lr
        return {"mlp": 5e-3, "conv": 2e-3}.get(self.arch, 1e-3)

    @property
    def finetune_epochs(self) -> int:
        return self.binary_epochs if self.binary_epochs is not None else self.epochs

    @property
    def eb_epochs_cap(self) -> int:
        return self.eb_max_epochs if self.eb_max_epochs is not None else max(self.epochs, self.eb_window)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able options (what a checkpoint must match to resume)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "channels" in kwargs:
            kwargs["channels"] = tuple(kwargs["channels"])
        return cls(**kwargs)


def ladder(rounds: int, fraction: float = 0.25) -> float:
    """Sparsity after ``rounds`` rounds of pruning ``fraction`` of the remaining weights: ``1 − (1 − f)^r``."""
    return 1.0 - (1.0 - fraction) ** rounds


def _int(value: Any, what: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SltSearchError(f"{what} must be an integer in [{low}, {high:,}], got {value!r}")


def _open_unit(value: Any, what: str, upper_closed: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and 0 < value and (value <= 1 if upper_closed else value < 1)
    if not ok:
        bound = "(0, 1]" if upper_closed else "(0, 1)"
        raise SltSearchError(f"{what} must be in {bound}, got {value!r}")
