"""Data sets for the ticket search: scikit-learn's digits (embedded, nothing downloaded) and
data a user brings.

``--data PATH`` accepts

- an ``.npz`` archive with ``x_train, y_train, x_test, y_test``, or with ``x, y`` (split
  80/20 by a seeded permutation, ``split_seed``);
- a folder holding the same arrays as ``.npy`` files (``x_train.npy`` …, or ``x.npy``,
  ``y.npy``);
- an image folder: one sub-folder per class (``root/cat/*.png``, ``root/dog/*.png``; split
  80/20 like ``x, y``), or ``root/train/<class>/…`` and ``root/test/<class>/…``. Classes
  are the sorted sub-folder names; images are decoded with Pillow, converted to the first
  image's kind (grayscale: 1 channel, otherwise RGB), must share one size, and become
  ``pixel / 255`` in float32.

Features are ``(n, *features)``: ``(n, F)`` for the MLP, ``(n, C, H, W)`` or ``(n, H, W)``
images for the conv nets; with ``encoding="spikes"`` every sample is ``(T, *features)``,
one frame per time step. They are used as given (direct encoding: the analog sample is the
input current source at every step), converted to float32 batch by batch. Labels are
integers ``0 … classes − 1``.

Nothing is loaded whole that need not be: ``.npy`` files and uncompressed ``.npz``
members are memory-mapped, image folders decoded a batch at a time
(:mod:`.sources`), so data larger than memory trains. Files are read without pickles and
with bounded headers; every problem is a one-line :class:`~slt_deploy.SltInputError`.
``validate=False`` skips the full pass over the features (finite values) and the hash:
the data-parallel search validates on rank 0 only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SltError, SltInputError
from . import sources
from .sources import ImageFiles, Samples, is_streamed

MAX_DATA_BYTES = sources.MAX_IN_MEMORY_BYTES
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
WHOLE_KEYS = ("x", "y")


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays (float32 features, int64 labels) and where they came from.

    ``image_shape`` is the per-sample ``(C, H, W)`` the conv net sees (``None`` when the
    features cannot be read as an image). Features are in-memory arrays, or
    :class:`~slt_deploy.search.sources.Samples` views of streamed data (same indexing).
    ``class_names``: the sub-folder names of an image folder.
    """

    name: str
    x_train: Any
    y_train: np.ndarray
    x_test: Any
    y_test: np.ndarray
    classes: int
    image_shape: tuple[int, int, int] | None
    sha256: str = ""
    class_names: tuple[str, ...] | None = None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def streamed(self) -> bool:
        """True when the features are read from disk batch by batch."""
        return is_streamed(self.x_train)

    def with_sha256(self, digest: str) -> Dataset:
        return replace(self, sha256=digest)

    def for_arch(self, arch: str, encoding: str = "direct") -> tuple[Any, Any]:
        """``(x_train, x_test)`` shaped for ``arch``: flat features for ``mlp``, ``(n, C, H, W)`` for
        the conv nets; with ``encoding="spikes"`` a time axis after the sample axis."""
        if encoding == "spikes":
            return self._frames_for_arch(arch)
        if arch != "mlp":
            if self.image_shape is None:
                raise SltInputError(
                    f"data set {self.name!r} has features of shape {self.feature_shape}; the {arch} net needs images "
                    "(n, C, H, W) or (n, H, W) of at least 4x4 pixels (use --arch mlp)")
            shape = self.image_shape
            return (self.x_train.reshape((-1, *shape)), self.x_test.reshape((-1, *shape)))
        return self.x_train.reshape(len(self.x_train), -1), self.x_test.reshape(len(self.x_test), -1)

    def frames(self) -> int:
        """Time frames per sample of spike-train data (the first axis after the samples)."""
        return int(self.feature_shape[0]) if len(self.feature_shape) >= 2 else 0

    def _frames_for_arch(self, arch: str) -> tuple[Any, Any]:
        shape = self.feature_shape
        if len(shape) < 2:
            raise SltInputError(f"--encoding spikes: data {self.name!r} has samples of shape {shape}; spike-train "
                                "samples are (T, *features), one frame per time step")
        T, step = shape[0], shape[1:]
        if arch == "mlp":
            return (self.x_train.reshape(len(self.x_train), T, -1), self.x_test.reshape(len(self.x_test), T, -1))
        image = _image_shape(tuple(step))
        if image is None:
            raise SltInputError(f"--encoding spikes: data {self.name!r} has frames of shape {tuple(step)}; the {arch} "
                                "net needs (C, H, W) or (H, W) frames of at least 4x4 pixels (use --arch mlp)")
        return (self.x_train.reshape((-1, T, *image)), self.x_test.reshape((-1, T, *image)))


def load_dataset(spec: str | os.PathLike[str], split_seed: int = 0, *, validate: bool = True) -> Dataset:
    """``"digits"`` or a path (see the module docstring)."""
    if isinstance(spec, str) and spec == "digits":
        return digits(split_seed)
    if not str(spec).strip():  # Path("") is the current folder
        raise SltInputError(f"data {str(spec)!r}: give 'digits', an .npz file or a folder")
    path = Path(spec)
    try:
        path.stat()
    except FileNotFoundError:
        pass  # refused below with the list of what --data takes
    except OSError as exc:  # a name too long, a symlink loop, ...
        raise SltInputError(f"data {str(spec)!r}: {exc.strerror or exc}") from None
    if path.is_dir():
        if any((path / f"{key}.npy").is_file() for key in SPLIT_KEYS + WHOLE_KEYS):
            arrays, digest = _read_folder(path, validate)
        else:
            return image_folder(path, split_seed, validate=validate)
    elif path.is_file():
        if path.suffix.lower() == ".npy":
            raise SltInputError(f"{path}: a single .npy array has no labels; give an .npz with x_train, y_train, "
                                "x_test, y_test (or x, y), or a folder of such .npy files")
        arrays, digest = _read_npz(path, validate)
    else:
        raise SltInputError(f"data {str(spec)!r}: no such file or folder (give 'digits', an .npz file, a folder "
                            "of .npy files or an image folder)")
    return from_arrays(arrays, name=str(spec), split_seed=split_seed, sha256=digest, validate=validate)


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


def from_arrays(arrays: dict[str, Any], name: str = "arrays", split_seed: int = 0, sha256: str = "",
                image_shape: tuple[int, int, int] | None = None, *, validate: bool = True) -> Dataset:
    """Validate user arrays (``x_train, y_train, x_test, y_test`` or ``x, y``) into a :class:`Dataset`.

    ``image_shape`` says how flat features read as ``(C, H, W)`` images (default: inferred
    from ``(n, C, H, W)`` / ``(n, H, W)`` features). In-memory features are converted to
    float32 here; memory-mapped ones (and :class:`~slt_deploy.search.sources.ImageFiles`)
    stay on disk, checked chunk by chunk."""
    if all(k in arrays for k in SPLIT_KEYS):
        x_train = _features(arrays["x_train"], "x_train", name, validate)
        x_test = _features(arrays["x_test"], "x_test", name, validate)
        y_train = _labels(arrays["y_train"], "y_train", name, len(x_train), "x_train")
        y_test = _labels(arrays["y_test"], "y_test", name, len(x_test), "x_test")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise SltInputError(f"{name}: x_train samples have shape {x_train.shape[1:]} but x_test samples "
                                f"{x_test.shape[1:]}")
    elif all(k in arrays for k in WHOLE_KEYS):
        x = _features(arrays["x"], "x", name, validate)
        y = _labels(arrays["y"], "y", name, len(x), "x")
        if len(x) < 2:
            raise SltInputError(f"{name}: x has {len(x)} sample(s); need at least 2 to split into train and test")
        order = np.random.default_rng(split_seed).permutation(len(x))
        cut = min(max(int(0.8 * len(x)), 1), len(x) - 1)
        if isinstance(x, Samples):
            x_train, x_test = x.subset(order[:cut]), x.subset(order[cut:])
        else:
            x_train, x_test = x[order[:cut]], x[order[cut:]]
        y_train, y_test = y[order[:cut]], y[order[cut:]]
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


def _features(a: Any, key: str, name: str, validate: bool = True) -> Any:
    dtype = np.dtype(a.dtype)
    if dtype.kind != "b" and (not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating)):
        raise SltInputError(f"{name}: {key} has dtype {dtype}; features must be real numbers")
    if len(a.shape) < 2:
        raise SltInputError(f"{name}: {key} has shape {tuple(a.shape)}; features must be (samples, *features)")
    if a.shape[0] == 0 or int(np.prod(a.shape[1:])) == 0:
        raise SltInputError(f"{name}: {key} has shape {tuple(a.shape)}; it is empty")
    if is_streamed(a):
        view = a if isinstance(a, Samples) else Samples(a)
        if validate and np.issubdtype(dtype, np.floating):
            start = 0
            for chunk in view.chunks():
                _finite(chunk, key, name, start)
                start += len(chunk)
        return view
    x = a.astype(np.float32)
    _finite(x, key, name, 0)
    return x


def _finite(x: np.ndarray, key: str, name: str, first: int) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.argwhere(bad.reshape(len(x), -1))[0][0])
        what = "NaN" if np.isnan(x.reshape(len(x), -1)[i]).any() else "inf (or a value too large for float32)"
        raise SltInputError(f"{name}: {key} holds {what} in sample {first + i}; features must be finite")


def _labels(a: np.ndarray, key: str, name: str, n: int, xkey: str) -> np.ndarray:
    a = np.asarray(a)  # labels are small: a memory-mapped label file is read here
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


def _read_npz(path: Path, validate: bool = True) -> tuple[dict[str, Any], str]:
    arrays = sources.open_npz(path, SPLIT_KEYS + WHOLE_KEYS)
    if not arrays:
        found = ", ".join(sorted(sources.npz_names(path))) or "nothing"
        raise SltInputError(f"{path}: expected arrays x_train, y_train, x_test, y_test (or x, y); found {found}")
    digest = sources.sha256_file(path).hexdigest() if validate else ""
    return arrays, digest


def _read_folder(path: Path, validate: bool = True) -> tuple[dict[str, Any], str]:
    arrays: dict[str, Any] = {}
    digest = hashlib.sha256()
    for key in SPLIT_KEYS + WHOLE_KEYS:
        f = path / f"{key}.npy"
        if not f.is_file():
            continue
        arrays[key] = sources.open_npy(f)
        if validate:
            digest.update(key.encode() + b"\0" + sources.sha256_file(f).digest())
    if not arrays:
        raise SltInputError(f"{path}: folder holds none of x_train.npy, y_train.npy, x_test.npy, y_test.npy "
                            "(or x.npy, y.npy)")
    return arrays, digest.hexdigest() if validate else ""


def _class_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _labelled_images(root: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    folders = _class_folders(root)
    if not folders:
        raise SltInputError(f"{root}: folder holds none of x_train.npy, y_train.npy, x_test.npy, y_test.npy (or x.npy, "
                            "y.npy), nor one sub-folder of images per class")
    names = [d.name for d in folders] if classes is None else classes
    paths: list[Path] = []
    labels: list[int] = []
    for d in folders:
        if d.name not in names:
            raise SltInputError(f"{d}: class {d.name!r} has no folder among the training classes")
        files = sources.image_files(d)
        if not files:
            raise SltInputError(f"{d}: class folder holds no images ({', '.join(sources.IMAGE_SUFFIXES)})")
        paths += files
        labels += [names.index(d.name)] * len(files)
    return paths, labels, names


def image_folder(path: str | os.PathLike[str], split_seed: int = 0, *, validate: bool = True) -> Dataset:
    """An image folder (see the module docstring): images stay on disk, decoded a batch at a time.

    ``validate`` reads every image header (readable, one size, at most
    :data:`~slt_deploy.search.sources.MAX_IMAGE_PIXELS` pixels); the data set's ``sha256``
    is then a fingerprint of the file names, sizes and modification times.
    """
    root = Path(path)
    split = (root / "train").is_dir() and (root / "test").is_dir()
    if split:
        train_paths, train_labels, names = _labelled_images(root / "train")
        test_paths, test_labels, _ = _labelled_images(root / "test", names)
        every = train_paths + test_paths
    else:
        every, labels, names = _labelled_images(root)
    mode, size = sources.probe_image(every[0])
    digest = ""
    if validate:
        for p in every:
            _, s = sources.probe_image(p)
            if s != size:
                raise SltInputError(f"{p}: image is {s[1]}x{s[0]} pixels, {every[0].name} is {size[1]}x{size[0]}; "
                                    "resize the images to one size")
        digest = sources.fingerprint(every, root)
    if split:
        arrays: dict[str, Any] = {"x_train": ImageFiles(train_paths, mode, size), "y_train": np.array(train_labels),
                                  "x_test": ImageFiles(test_paths, mode, size), "y_test": np.array(test_labels)}
    else:
        arrays = {"x": ImageFiles(every, mode, size), "y": np.array(labels)}
    data = from_arrays(arrays, name=str(path), split_seed=split_seed, sha256=digest, validate=validate)
    return replace(data, class_names=tuple(names))
