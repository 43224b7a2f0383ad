"""Import a PyTorch / snnTorch / SpikingJelly module (one time step) into a :class:`Ticket`.

The module is traced with ``torch.fx`` (``nn.Sequential``, nested or not, traces too) with
neurons, synapse layers, pools and BatchNorm kept as leaf modules. Each traced node maps
to IR nodes; see docs/importers.md for the exact equations and everything refused.

Weights: ``W = mask ⊙ value``. The mask comes from ``torch.nn.utils.prune``
(``weight_mask`` != 0, value ``weight_orig``), from the ``masks`` argument, or else from
the nonzero pattern of the weight. ``binarize=True`` stores ``sign · α`` with α per output
channel (mean |w| of kept weights, or the given ``alpha``); ``binarize={"pep", "rpe"}`` (module
paths or weight names) binarizes only those layers. BatchNorm right after a
Linear/Conv2d is folded into it (float64, rounded once); that is the one documented
reparametrisation, recorded in the ticket metadata under ``folded_batchnorm``.

Checkpoints: :func:`load_checkpoint` and :func:`build_from_arch` read ``torch.save`` files
with ``weights_only=True``; whole pickled modules need ``trust_pickle=True``.
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import SltImportError, SltValidationError
from ..ir.graph import Encoding, Ticket, encoding_of
from ..ir.nodes import Shape
from ..ir.transforms import store_binary_where_exact
from ..untrusted import check_mask, check_tensors, verify_torch_zip
from ._convert import _Converter, _Options
from ._trace import _first_line, _trace, _Tracer

_ARCH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# =================================================================== public API
def import_module(module: Any, example_input: Any = None, timesteps: int = 8, binarize: bool | Iterable[str] = False,
                  fold_bn: bool = True, masks: Mapping[str, Any] | None = None,
                  alpha: float | Mapping[str, Any] | None = None, encoding: str | Encoding = "direct",
                  input_shape: Shape | None = None, allow_reassociation: bool = False,
                  seed: int | None = None) -> Ticket:
    """Import one time step of ``module`` as a ticket run for ``timesteps`` steps.

    ``example_input`` (or ``input_shape``) gives the per-step input ``(batch, *features)``.
    ``masks`` maps a weight name (``"fc1.weight"``) or module path (``"fc1"``) to a keep
    mask; ``alpha`` is one binary scale for every layer, or such a mapping to a scale or
    per-output-channel scales. ``allow_reassociation`` is accepted for compatibility and
    no longer needed: snnTorch RLeaky imports exactly as an RLIF layer (docs/importers.md). ``encoding``: ``"direct"``,
    ``"rate"`` (with ``seed``, default 0: slt_deploy.ratecode) or ``"spikes"``, or an
    :class:`Encoding`. Raises
    :class:`SltImportError` / :class:`SltUnsupportedError` naming the module.
    """
    if not isinstance(module, nn.Module):
        raise SltImportError(f"expected a torch.nn.Module, got {type(module).__name__}")
    shape = _input_shape(example_input, input_shape)
    enc = _encoding(encoding, seed)
    if _Tracer().is_leaf_module(module, ""):
        module = nn.Sequential(module)  # a bare layer or neuron: trace it as a one-layer network
    graph = _trace(module)
    scales = _named(alpha, "alpha") if isinstance(alpha, Mapping) else ({} if alpha is None else {"": alpha})
    options = _Options(_binarize(binarize), bool(fold_bn), _named(masks, "masks"), scales, bool(allow_reassociation))
    try:
        ticket = _Converter(module, options).run(graph, shape, timesteps, enc)
    except SltValidationError as exc:  # an IR constructor refused a converted value
        _hint_spike_train_example(module, example_input, input_shape, exc)
        raise SltImportError(f"cannot import {type(module).__name__}: {exc}") from None
    except SltImportError as exc:
        _hint_spike_train_example(module, example_input, input_shape, exc)
        raise
    if options.binarize is True:
        return ticket
    if options.binarize:
        layers = {n.name for n in ticket.synapse_layers()}
        missing = sorted(options.binarize - layers)
        if missing:
            raise SltImportError(f"binarize names {missing[0]!r}, which is not a Linear/Conv2d layer of the module "
                                 f"(layers: {', '.join(sorted(layers))})")
    ticket, binary = store_binary_where_exact(ticket)  # already-binary float weights: 1 bit, same spikes
    if binary:
        meta = dict(ticket.metadata, stored_binary=",".join(binary))
        ticket = Ticket(ticket.nodes, ticket.edges, ticket.timesteps, ticket.encoding, meta)
    return ticket


def _binarize(binarize: Any) -> bool | frozenset[str]:
    """``binarize``: a bool (every synapse layer), or module paths / weight names (``"pep"``, ``"pep.weight"``)."""
    if isinstance(binarize, bool):
        return bool(binarize)
    if isinstance(binarize, str) or not isinstance(binarize, Iterable):
        raise SltImportError(f"binarize must be true/false or a collection of layer names, got {binarize!r}")
    names = frozenset(str(n).removesuffix(".weight") for n in binarize)
    return names if names else False


def _hint_spike_train_example(module: nn.Module, example: Any, given: Shape | None, exc: Exception) -> None:
    """An example input of a whole spike train ``(T, batch, *features)`` fails on its shape: say so."""
    if given is not None or example is None or len(getattr(example, "shape", ())) < 3:
        return
    try:
        one_step = _input_shape(example[0], None)
        _Converter(module, _Options(False, True, {}, {}, False)).run(_trace(module), one_step, 1, Encoding("direct"))
    except Exception:  # noqa: BLE001 - the hint applies only when one step of the example converts
        return
    raise SltImportError(f"example_input has shape {tuple(example.shape)}, a whole spike train (T, batch, *features)? "
                         f"slt imports one time step: give example_input[0] (shape {tuple(example.shape[1:])}) and "
                         f"encoding=\"spikes\" ({exc})") from None


@dataclass
class Checkpoint:
    """A loaded checkpoint: a plain ``state_dict`` plus keep-masks (prune keys converted),
    or a whole ``module`` (only with ``trust_pickle=True``)."""

    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    module: nn.Module | None = None


def load_checkpoint(path: str | os.PathLike[str], trust_pickle: bool = False) -> Checkpoint:
    """Read a ``torch.save`` file safely (``weights_only=True``).

    A state dict (also wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``) has its
    prune pairs ``x.weight_orig`` / ``x.weight_mask`` turned into ``x.weight`` plus a mask.
    A pickled module needs ``trust_pickle=True`` (unpickling can execute arbitrary code).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SltImportError(f"checkpoint {path!r} does not exist or is not a file")
    verify_torch_zip(path)  # CRC-32 of every member: torch.load does not check them
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every load failure becomes a one-line SltImportError
        if not _needs_pickle(exc):
            raise SltImportError(f"cannot read checkpoint {path!r}: {_first_line(exc)}") from None
        if not trust_pickle:
            raise SltImportError(
                f"checkpoint {path!r} holds pickled Python objects (e.g. a whole module); loading it can execute "
                "arbitrary code. Save model.state_dict() instead, or pass trust_pickle=True for a file you trust"
            ) from None
        warnings.warn(f"loading {path!r} with full pickle (trust_pickle=True): this can execute arbitrary code; "
                      "only do this for files you trust", UserWarning, stacklevel=2)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:  # noqa: BLE001
            raise SltImportError(f"cannot read checkpoint {path!r}: {_first_line(exc2)}") from None
    return _checkpoint_of(obj, path)


def build_from_arch(arch: str, weights_path: str | os.PathLike[str] | None = None,
                    trust_pickle: bool = False) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Build ``"pkg.module:callable"`` (called without arguments), load the weights strictly.

    Returns the module and the keep-masks found in the checkpoint (pass them as ``masks=``).
    """
    if not isinstance(arch, str) or not _ARCH.match(arch):
        raise SltImportError(f"architecture spec {arch!r} must look like 'package.module:callable'")
    mod_name, attr = arch.split(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001
        raise SltImportError(f"cannot import {mod_name!r} for architecture {arch!r}: {_first_line(exc)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SltImportError(f"architecture {arch!r}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SltImportError(f"architecture {arch!r} is not callable")
    try:
        module = obj()
    except Exception as exc:  # noqa: BLE001
        raise SltImportError(f"calling {arch!r}() failed: {_first_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise SltImportError(f"{arch!r}() returned {type(module).__name__}, not a torch.nn.Module")
    if weights_path is None:
        return module, {}
    ckpt = load_checkpoint(weights_path, trust_pickle=trust_pickle)
    state = ckpt.state_dict
    masks = dict(ckpt.masks)
    if ckpt.module is not None:
        converted = _checkpoint_of(ckpt.module.state_dict(), os.fspath(weights_path))
        state, masks = converted.state_dict, converted.masks
    expected = set(module.state_dict())
    for key, mask in masks.items():  # an architecture that applies prune itself keeps the prune keys
        if key + "_orig" in expected and key in state:
            state = {**state, key + "_orig": state[key], key + "_mask": mask.to(torch.float32)}
            del state[key]
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001
        raise SltImportError(f"weights {os.fspath(weights_path)!r} do not fit {arch!r}: {_summary(exc)}") from None
    return module, masks


# ================================================================ checkpoints
def _needs_pickle(exc: BaseException) -> bool:
    msg = str(exc)
    return "Weights only load failed" in msg and ("Unsupported global" in msg or "GLOBAL" in msg)


def _summary(exc: BaseException) -> str:
    return " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())[:400]


def _checkpoint_of(obj: Any, path: str) -> Checkpoint:
    if isinstance(obj, nn.Module):
        return Checkpoint(module=obj)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                return Checkpoint(module=inner)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            check_tensors(obj, path)
            return _split_prune(dict(obj))
    raise SltImportError(f"checkpoint {path!r} is neither a state_dict (name -> tensor) nor a module")


def _split_prune(state: dict[str, torch.Tensor]) -> Checkpoint:
    out: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("_orig") and key[:-5] + "_mask" in state:
            base = key[:-5]
            mask = state[base + "_mask"]
            if mask.shape != value.shape:
                raise SltImportError(
                    f"prune mask {base}_mask has shape {tuple(mask.shape)}, weight {tuple(value.shape)}"
                )
            check_mask(base + "_mask", mask)
            out[base] = value
            masks[base] = mask != 0
        elif key.endswith("_mask") and key[:-5] + "_orig" in state:
            continue
        else:
            out[key] = value
    return Checkpoint(state_dict=out, masks=masks)


# ==================================================================== helpers
def _input_shape(example: Any, given: Shape | None) -> Shape:
    if given is not None:
        try:
            shape = tuple(int(s) for s in given)
        except (TypeError, ValueError):
            raise SltImportError(f"input_shape must be a tuple of ints (per sample), got {given!r}") from None
    elif example is not None:
        if not hasattr(example, "shape"):
            raise SltImportError("example_input must be a tensor or array of shape (batch, *features)")
        full = tuple(int(s) for s in example.shape)
        if len(full) < 2:
            raise SltImportError(f"example_input has shape {full}; give (batch, *features)")
        shape = full[1:]
    else:
        raise SltImportError("give example_input (shape (batch, *features)) or input_shape (per sample)")
    if not shape or min(shape) < 1:
        raise SltImportError(f"input shape {shape} must be non-empty with positive sizes")
    return shape


def _encoding(kind: str | Encoding, seed: int | None) -> Encoding:
    try:
        return encoding_of(kind, seed)
    except SltValidationError as exc:
        raise SltImportError(str(exc)) from None


def _named(mapping: Any, what: str) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping) or not all(isinstance(k, str) for k in mapping):
        raise SltImportError(f"{what} must map weight names or module paths (str) to values")
    return dict(mapping)

