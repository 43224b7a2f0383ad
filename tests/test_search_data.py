"""User data sets of the ticket search: memory-mapped .npy/.npz, image folders (Pillow),
spike-train samples; untrusted files; memory bounded by the chunk size, not the file."""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slt_deploy.errors import SltInputError
from slt_deploy.search import image_folder, load_dataset, sources
from slt_deploy.search.sources import Samples


def _digits():
    pytest.importorskip("sklearn")
    from slt_deploy.search import digits

    return digits()


# ============================================================ arrays on disk
def test_npy_folder_is_memory_mapped_and_reads_the_same_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 2, 3)).astype(np.float64)  # standardized features, float64 on disk
    y = rng.integers(0, 3, 50)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    d = load_dataset(tmp_path, split_seed=1)
    assert d.streamed and isinstance(d.x_train, Samples) and isinstance(d.x_train.base, np.memmap)
    order = np.random.default_rng(1).permutation(50)
    assert np.array_equal(np.asarray(d.x_train), x[order[:40]].astype(np.float32))
    assert np.array_equal(d.x_test[[1, 0]], x[order[[41, 40]]].astype(np.float32))
    assert np.array_equal(d.y_test, y[order[40:]]) and d.y_train.dtype == np.int64
    flat, _ = d.for_arch("mlp")
    assert flat.shape == (40, 6) and np.array_equal(flat[3], x[order[3]].reshape(-1).astype(np.float32))
    # the in-memory path (.npz compressed) gives the very same data set
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y)
    c = load_dataset(tmp_path / "c.npz", split_seed=1)
    assert not c.streamed and np.array_equal(c.x_train, np.asarray(d.x_train))


def test_uncompressed_npz_members_are_memory_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.random((30, 4), np.float32), "y_train": rng.integers(0, 2, 30),
              "x_test": rng.random((10, 4), np.float32), "y_test": np.array([0, 1] * 5)}
    np.savez(tmp_path / "s.npz", **arrays)
    d = load_dataset(tmp_path / "s.npz")
    assert isinstance(d.x_train.base, np.memmap)
    assert np.array_equal(np.asarray(d.x_train), arrays["x_train"]) and np.array_equal(d.y_test, arrays["y_test"])
    import hashlib

    assert d.sha256 == hashlib.sha256((tmp_path / "s.npz").read_bytes()).hexdigest()  # sha256sum of the file


def test_streamed_features_are_read_in_bounded_chunks(tmp_path: Path, monkeypatch) -> None:
    """A 24 MiB feature file is validated, hashed and trained on with a few MiB of memory."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    from slt_deploy.search.model import build_model
    from slt_deploy.search.trainer import Trainer

    n, f = 3072, 2048
    x = np.lib.format.open_memmap(tmp_path / "x_train.npy", mode="w+", dtype=np.float32, shape=(n, f))
    for start in range(0, n, 512):
        x[start:start + 512] = np.random.default_rng(start).standard_normal((512, f), np.float32)
    x.flush()
    del x
    labels = np.arange(n) % 2
    np.save(tmp_path / "y_train.npy", labels)
    np.save(tmp_path / "x_test.npy", np.zeros((4, f), np.float32))
    np.save(tmp_path / "y_test.npy", np.array([0, 1, 0, 1]))
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1 << 20)
    torch.set_num_threads(1)
    model = build_model("mlp", (f,), 2, hidden=8)
    tracemalloc.start()
    try:  # warm up first: imports (torch._dynamo with the first optimiser) count as allocations too
        Trainer(batch_size=128).fit(model, np.zeros((8, f), np.float32), np.array([0, 1] * 4), 1, 2)
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        d = load_dataset(tmp_path)  # validates every value (finite) and hashes the files
        Trainer(batch_size=128).fit(model, d.x_train, d.y_train, 1, 2)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert (tmp_path / "x_train.npy").stat().st_size > 24 << 20
    assert peak < 6 << 20, f"peak memory above the start {peak / 2**20:.1f} MiB"
    assert isinstance(d.x_train.base, np.memmap) and len(d.sha256) == 64


def _npy_bytes(header: str, data: bytes = b"") -> bytes:
    head = header.encode("latin1")
    head += b" " * ((-(10 + len(head) + 1)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data


@pytest.mark.parametrize("content, message", [
    (_npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 4), }", b"\0" * 64), "truncated"),
    (_npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), " + " " * 12000 + "}", b"\0" * 16),
     "not a readable .npy array"),
    (_npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", b"\0" * 16),
     "Object arrays cannot be loaded"),
    (b"\x93NUMPY\x09\x00garbage", "not a readable .npy array"),
    (b"not numpy at all", "not a readable .npy array"),
])
def test_untrusted_npy_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "x.npy").write_bytes(content)
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    with pytest.raises(SltInputError) as info:
        load_dataset(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_untrusted_npz_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", x=np.zeros((4, 2), np.float32), y=np.array([0, 1, 0, 1]))
    raw = bytearray((tmp_path / "ok.npz").read_bytes())
    (tmp_path / "cut.npz").write_bytes(bytes(raw[:200]))  # the central directory is gone
    with pytest.raises(SltInputError, match="not a readable .npz archive"):
        load_dataset(tmp_path / "cut.npz")
    # a stored member whose header promises more data than the archive holds
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as z:
        z.writestr("x.npy", _npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 8), }",
                                       b"\0" * 32))
        z.writestr("y.npy", _npy_bytes(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", b"\0" * 16))
    with pytest.raises(SltInputError, match="truncated"):
        load_dataset(tmp_path / "big.npz")
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0], [np.nan], [1.0]]), y=np.array([0, 1, 0]))
    with pytest.raises(SltInputError, match="NaN in sample 1"):
        load_dataset(tmp_path / "nan.npz")


# ============================================================ image folders
def _write_images(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str], mode: str = "L") -> None:
    from PIL import Image

    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode=mode).save(folder / f"{i:04d}.png")


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    data = _digits()
    pixels = (np.asarray(data.x_train[:60]) * 255).round().astype(np.uint8).reshape(-1, 8, 8)
    labels = data.y_train[:60] % 3
    _write_images(tmp_path / "imgs", pixels, labels, ["c0", "c1", "c2"])
    d = load_dataset(tmp_path / "imgs", split_seed=2)
    assert d.classes == 3 and d.class_names == ("c0", "c1", "c2") and d.image_shape == (1, 8, 8)
    assert len(d.x_train) == 48 and len(d.x_test) == 12 and len(d.sha256) == 64
    # the samples are pixel / 255 in float32, in the seeded split of the sorted file list
    files = sorted((tmp_path / "imgs").glob("*/*.png"))
    order = np.random.default_rng(2).permutation(60)
    index = {f"{i:04d}": i for i in range(60)}
    first = index[files[order[0]].stem]
    assert np.array_equal(d.x_train[0], pixels[first][None].astype(np.float32) / np.float32(255))
    assert d.y_train[0] == labels[first]


def test_image_folder_train_test_layout_and_rgb(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 6, 5, 3), dtype=np.uint8)
    _write_images(tmp_path / "train", rgb[:8], np.arange(8) % 2, ["cat", "dog"], mode="RGB")
    _write_images(tmp_path / "test", rgb[8:], np.arange(4) % 2, ["cat", "dog"], mode="RGB")
    d = image_folder(tmp_path)
    assert d.image_shape == (3, 6, 5) and len(d.x_train) == 8 and len(d.x_test) == 4
    # files in class order: cat/0000 (rgb[8]), cat/0002 (rgb[10]), dog/0001 (rgb[9]), dog/0003 (rgb[11])
    assert np.array_equal(d.x_test[2], rgb[9].transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    assert d.y_test.tolist() == [0, 0, 1, 1]


def test_bad_image_folders(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    root = tmp_path / "a"
    _write_images(root, np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1]), ["x", "y"])
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(root / "y" / "odd.png")
    with pytest.raises(SltInputError, match=r"odd.png: image is 8x9 pixels.*resize"):
        load_dataset(root)
    (root / "y" / "odd.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SltInputError, match="odd.png: not a readable image"):
        load_dataset(root)
    (root / "y" / "odd.png").unlink()
    (root / "z").mkdir()
    with pytest.raises(SltInputError, match="class folder holds no images"):
        load_dataset(root)
    (root / "z").rmdir()
    (tmp_path / "b" / "train" / "x").mkdir(parents=True)
    (tmp_path / "b" / "test" / "w").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "b" / "train" / "x" / "0.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "b" / "test" / "w" / "0.png")
    with pytest.raises(SltInputError, match="class 'w' has no folder among the training classes"):
        load_dataset(tmp_path / "b")
    monkey = sources.MAX_IMAGE_PIXELS
    try:
        sources.MAX_IMAGE_PIXELS = 32
        with pytest.raises(SltInputError, match="larger than the 32 pixels"):
            load_dataset(root)
    finally:
        sources.MAX_IMAGE_PIXELS = monkey


def test_search_on_an_image_folder_and_on_spike_trains(tmp_path: Path) -> None:
    """End to end: the CLI on Pillow images (ticket input = pixel/255) and on (T, F) spike frames."""
    pytest.importorskip("snntorch")
    pytest.importorskip("PIL")
    from typer.testing import CliRunner

    import slt_deploy as slt
    from slt_deploy.cli import app

    data = _digits()
    pixels = (np.asarray(data.x_train[:200]) * 255).round().astype(np.uint8).reshape(-1, 8, 8)
    _write_images(tmp_path / "imgs", pixels, data.y_train[:200], [f"d{i}" for i in range(10)])
    out = tmp_path / "img.slt"
    args = ["search", "--data", str(tmp_path / "imgs"), "--rounds", "1", "--epochs", "1", "--hidden", "16", "-T",
            "3", "--workers", "1", "--json", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    log = json.loads(res.stdout)
    assert log["data"]["class_names"] == [f"d{i}" for i in range(10)] and log["distributed"]["data_workers"] == 1
    d = load_dataset(tmp_path / "imgs")
    x_test = np.asarray(d.x_test).reshape(len(d.x_test), -1)
    correct = int((slt.run(slt.load(out), x_test).predictions() == d.y_test).sum())
    assert correct == log["ticket"]["correct_reference"]

    # spike trains: every sample is T = 4 frames of rate-coded pixels (what binned events look like)
    rng = np.random.default_rng(0)
    x = np.asarray(data.x_train[:300])
    frames = (rng.random((300, 4, 64)) < x[:, None, :]).astype(np.uint8)
    np.savez(tmp_path / "spikes.npz", x=frames, y=data.y_train[:300])
    out = tmp_path / "spk.slt"
    base = ["search", "--data", str(tmp_path / "spikes.npz"), "--encoding", "spikes", "--rounds", "1", "--epochs",
            "1", "--hidden", "16", "--json", "--out", str(out)]
    res = CliRunner().invoke(app, [*base, "-T", "5"])
    assert res.exit_code == 2 and "has 4 frames per sample; give --timesteps 4" in res.stderr
    res = CliRunner().invoke(app, [*base, "-T", "4"])
    assert res.exit_code == 0, res.output
    log = json.loads(res.stdout)
    ticket = slt.load(out)
    assert ticket.encoding.kind == "spikes" and ticket.timesteps == 4
    spikes = load_dataset(tmp_path / "spikes.npz")
    trains = np.moveaxis(np.asarray(spikes.x_test), 1, 0)  # (T, batch, 64)
    assert int((slt.run(ticket, trains).predictions() == spikes.y_test).sum()) == log["ticket"]["correct_reference"]
