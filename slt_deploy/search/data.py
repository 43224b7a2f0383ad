"""Data sets for the ticket search: scikit-learn's digits (embedded, nothing downloaded) and
arrays a user brings.

``--data PATH`` accepts

- an ``.npz`` archive with ``x_train, y_train, x_test, y_test``, or with ``x, y`` (split
  80/20 by a seeded permutation, ``split_seed``);
- a folder holding the same arrays as ``.npy`` files (``x_train.npy`` …, or ``x.npy``,
  ``y.npy``).

Features are ``(n, *features)``: ``(n, F)`` for the MLP, ``(n, C, H, W)`` or ``(n, H, W)``
images for the conv net. They are used as given (direct encoding: the analog sample is the
input current source at every step), converted to float32. Labels are integers
``0 … classes − 1``. Files are read with ``allow_pickle=False``; every problem is a one-line
:class:`~slt_deploy.SltInputError`.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SltError, SltInputError

MAX_DATA_BYTES = 4 << 30
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
WHOLE_KEYS = ("x", "y")


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays (float32 features, int64 labels) and where they came from.

    ``image_shape`` is the per-sample ``(C, H, W)`` the conv net sees (``None`` when the
    features cannot be read as an image).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    image_shape: tuple[int, int, int] | None
    sha256: str = ""

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def for_arch(self, arch: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x_train, x_test)`` shaped for ``arch``: flat features for ``mlp``, ``(n, C, H, W)`` for ``conv``."""
        if arch == "conv":
            if self.image_shape is None:
                raise SltInputError(
                    f"data set {self.name!r} has features of shape {self.feature_shape}; the conv net needs images "
                    "(n, C, H, W) or (n, H, W) of at least 4x4 pixels (use --arch mlp)")
            shape = self.image_shape
            return (self.x_train.reshape((-1, *shape)), self.x_test.reshape((-1, *shape)))
        return self.x_train.reshape(len(self.x_train), -1), self.x_test.reshape(len(self.x_test), -1)


def load_dataset(spec: str | os.PathLike[str], split_seed: int = 0) -> Dataset:
    """``"digits"`` or a path (see the module docstring)."""
    if isinstance(spec, str) and spec == "digits":
        return digits(split_seed)
    path = Path(spec)
    if path.is_dir():
        arrays, digest = _read_folder(path)
    elif path.is_file():
        if path.suffix.lower() == ".npy":
            raise SltInputError(f"{path}: a single .npy array has no labels; give an .npz with x_train, y_train, "
                                "x_test, y_test (or x, y), or a folder of such .npy files")
        arrays, digest = _read_npz(path)
    else:
        raise SltInputError(f"data {str(spec)!r}: no such file or folder (give 'digits', an .npz file or a folder "
                            "of .npy files)")
    return from_arrays(arrays, name=str(spec), split_seed=split_seed, sha256=digest)


def digits(split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits, scaled to [0, 1] in steps of 1/16 (exact in float32), split
    80/20 by ``default_rng(split_seed).permutation`` (the same split as ``slt demo``)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SltError("the digits data set needs scikit-learn: pip install scikit-learn") from None
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return Dataset("digits", x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]], 10, (1, 8, 8))


def from_arrays(arrays: dict[str, np.ndarray], name: str = "arrays", split_seed: int = 0, sha256: str = "",
                image_shape: tuple[int, int, int] | None = None) -> Dataset:
    """Validate user arrays (``x_train, y_train, x_test, y_test`` or ``x, y``) into a :class:`Dataset`.

    ``image_shape`` says how flat features read as ``(C, H, W)`` images (default: inferred
    from ``(n, C, H, W)`` / ``(n, H, W)`` features)."""
    if all(k in arrays for k in SPLIT_KEYS):
        x_train = _features(arrays["x_train"], "x_train", name)
        x_test = _features(arrays["x_test"], "x_test", name)
        y_train = _labels(arrays["y_train"], "y_train", name, len(x_train), "x_train")
        y_test = _labels(arrays["y_test"], "y_test", name, len(x_test), "x_test")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise SltInputError(f"{name}: x_train samples have shape {x_train.shape[1:]} but x_test samples "
                                f"{x_test.shape[1:]}")
    elif all(k in arrays for k in WHOLE_KEYS):
        x = _features(arrays["x"], "x", name)
        y = _labels(arrays["y"], "y", name, len(x), "x")
        if len(x) < 2:
            raise SltInputError(f"{name}: x has {len(x)} sample(s); need at least 2 to split into train and test")
        order = np.random.default_rng(split_seed).permutation(len(x))
        cut = min(max(int(0.8 * len(x)), 1), len(x) - 1)
        x_train, y_train, x_test, y_test = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
    else:
        found = ", ".join(sorted(arrays)) or "nothing"
        raise SltInputError(f"{name}: expected arrays x_train, y_train, x_test, y_test (or x, y); found {found}")
    classes = int(max(y_train.max(), y_test.max())) + 1
    if classes < 2:
        raise SltInputError(f"{name}: the labels hold a single class; need at least 2")
    missing = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if missing:
        raise SltInputError(f"{name}: test label {missing[0]} never occurs in the training labels")
    if image_shape is not None:
        image_shape = tuple(int(v) for v in image_shape)  # type: ignore[assignment]
        if len(image_shape) != 3 or int(np.prod(image_shape)) != int(np.prod(x_train.shape[1:])):
            raise SltInputError(f"{name}: image shape {image_shape} does not hold samples of shape {x_train.shape[1:]}")
    else:
        image_shape = _image_shape(x_train.shape[1:])
    return Dataset(name, x_train, y_train, x_test, y_test, classes, image_shape, sha256)


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    if len(shape) == 3:
        c, h, w = shape
    elif len(shape) == 2:
        (h, w), c = shape, 1
    else:
        return None
    return (c, h, w) if h >= 4 and w >= 4 else None


def _features(a: np.ndarray, key: str, name: str) -> np.ndarray:
    if a.dtype != bool and (not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a)):
        raise SltInputError(f"{name}: {key} has dtype {a.dtype}; features must be real numbers")
    if a.ndim < 2:
        raise SltInputError(f"{name}: {key} has shape {a.shape}; features must be (samples, *features)")
    if len(a) == 0 or a[0].size == 0:
        raise SltInputError(f"{name}: {key} has shape {a.shape}; it is empty")
    x = a.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.argwhere(bad.reshape(len(x), -1))[0][0])
        what = "NaN" if np.isnan(x.reshape(len(x), -1)[i]).any() else "inf (or a value too large for float32)"
        raise SltInputError(f"{name}: {key} holds {what} in sample {i}; features must be finite")
    return x


def _labels(a: np.ndarray, key: str, name: str, n: int, xkey: str) -> np.ndarray:
    if a.ndim != 1:
        raise SltInputError(f"{name}: {key} has shape {a.shape}; labels must be one integer per sample")
    if len(a) != n:
        raise SltInputError(f"{name}: {key} has {len(a)} labels but {xkey} has {n} samples")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise SltInputError(f"{name}: {key} has dtype {a.dtype}; labels must be integers 0..classes-1")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            i = int(np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))[0])
            raise SltInputError(f"{name}: {key}[{i}] = {a[i].item()!r} is not an integer label")
    if np.any(a < 0):
        i = int(np.flatnonzero(a < 0)[0])
        raise SltInputError(f"{name}: {key}[{i}] = {a[i].item()!r} is negative; labels must be 0..classes-1")
    if np.any(a > 1_000_000):
        raise SltInputError(f"{name}: {key} holds labels above 1,000,000; labels must be 0..classes-1")
    return a.astype(np.int64)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], str]:
    if path.stat().st_size > MAX_DATA_BYTES:
        raise SltInputError(f"{path}: data file is larger than 4 GiB")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltInputError(f"{path}: not a readable .npz archive ({reason})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SltInputError(f"{path}: holds a single array, not an .npz archive with x_train, y_train, ...")
    try:
        keys = [k for k in archive.files if k in SPLIT_KEYS + WHOLE_KEYS]
        if not keys:
            found = ", ".join(sorted(archive.files)) or "nothing"
            raise SltInputError(f"{path}: expected arrays x_train, y_train, x_test, y_test (or x, y); found {found}")
        arrays = {k: archive[k] for k in keys}
    except SltInputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SltInputError(f"{path}: not a readable .npz archive ({reason})") from None
    finally:
        archive.close()
    return arrays, digest


def _read_folder(path: Path) -> tuple[dict[str, np.ndarray], str]:
    arrays: dict[str, np.ndarray] = {}
    digest = hashlib.sha256()
    for key in SPLIT_KEYS + WHOLE_KEYS:
        f = path / f"{key}.npy"
        if not f.is_file():
            continue
        if f.stat().st_size > MAX_DATA_BYTES:
            raise SltInputError(f"{f}: data file is larger than 4 GiB")
        raw = f.read_bytes()
        digest.update(key.encode() + b"\0" + hashlib.sha256(raw).digest())
        try:
            with open(f, "rb") as fh:
                arr = np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SltInputError(f"{f}: not a readable .npy array ({reason})") from None
        if not isinstance(arr, np.ndarray):
            raise SltInputError(f"{f}: expected a single .npy array")
        arrays[key] = arr
    if not arrays:
        raise SltInputError(f"{path}: folder holds none of x_train.npy, y_train.npy, x_test.npy, y_test.npy "
                            "(or x.npy, y.npy)")
    return arrays, digest.hexdigest()
