"""HDF5 inputs (netx .net.h5, NIR .nir) as untrusted input: no links, external storage or virtual
datasets anywhere, declared sizes bounded, h5py in a child process with a time limit
(SLT_HDF5_TIMEOUT), netx's timesteps / groups / weight ranges checked."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from slt_deploy.exporters.netx import import_netx  # noqa: E402

import slt_deploy as slt  # noqa: E402
from slt_deploy.errors import SltFormatError, SltImportError, SltInputError  # noqa: E402
from slt_deploy.untrusted.hdf5 import in_child, timeout_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICKET = ROOT / "examples" / "digits-mlp-imp-binary.slt"


@pytest.fixture(scope="module")
def netx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("netx") / "m.net.h5"
    slt.export(slt.load(TICKET), path, to="netx")
    return path


def _edited(src: Path, dst: Path, edit) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        edit(f)
    return dst


def _replace(f, key: str, value) -> None:
    del f[key]
    f[key] = value


def test_the_exported_netx_file_imports(netx_file: Path) -> None:
    assert import_netx(netx_file).timesteps == 8


def test_netx_refuses_external_links(netx_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g["w"] = np.ones((128, 64), np.float32)

    def edit(f):
        del f["layer/1/weight"]
        f["layer/1/weight"] = h5py.ExternalLink(str(other), "/w")

    with pytest.raises(SltFormatError, match="ExternalLink"):
        import_netx(_edited(netx_file, tmp_path / "ext.h5", edit))


def test_netx_refuses_external_raw_storage(netx_file: Path, tmp_path: Path) -> None:
    secret = tmp_path / "hostname"
    secret.write_bytes(b"\x01" * (128 * 64))

    def edit(f):
        del f["layer/1/weight"]
        f.create_dataset("layer/1/weight", shape=(128, 64), dtype="u1", external=[(str(secret), 0, 128 * 64)])

    with pytest.raises(SltFormatError, match="virtual or external dataset"):
        import_netx(_edited(netx_file, tmp_path / "raw.h5", edit))


def test_netx_refuses_virtual_datasets(netx_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "src.h5"
    with h5py.File(other, "w") as g:
        g["w"] = np.ones((128, 64), np.float32)

    def edit(f):
        layout = h5py.VirtualLayout(shape=(128, 64), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "w", shape=(128, 64))
        del f["layer/1/weight"]
        f.create_virtual_dataset("layer/1/weight", layout)

    with pytest.raises(SltFormatError, match="virtual or external dataset"):
        import_netx(_edited(netx_file, tmp_path / "vds.h5", edit))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.net.h5"
    os.mkfifo(fifo)
    with pytest.raises(SltFormatError, match="not a regular file"):
        import_netx(fifo)
    nir_fifo = tmp_path / "pipe.nir"
    os.mkfifo(nir_fifo)
    with pytest.raises(SltFormatError, match="not a regular file"):
        slt.api.load_any(nir_fifo)


@pytest.mark.parametrize("value", [True, 8.7, np.inf, 0, -3, 10**7, "8"])
def test_netx_timesteps_must_be_a_positive_integer(netx_file: Path, tmp_path: Path, value) -> None:
    def edit(f):
        f.attrs["timesteps"] = value

    with pytest.raises(SltFormatError, match="timesteps"):
        import_netx(_edited(netx_file, tmp_path / "t.h5", edit))


@pytest.mark.parametrize("bad", [255 * 4, -257, 2**31 - 1])
def test_netx_weights_beyond_8_bits_are_refused(netx_file: Path, tmp_path: Path, bad: int) -> None:
    def edit(f):
        w = f["layer/1/weight"][()]
        w[0, 0] = bad
        _replace(f, "layer/1/weight", w.astype(np.float64))

    with pytest.raises(SltFormatError, match="outside \\[-256, 255\\]|beyond 32 bits"):
        import_netx(_edited(netx_file, tmp_path / "w.h5", edit))


def test_netx_conv_groups_0_is_a_typed_error(tmp_path: Path) -> None:
    from slt_deploy.exporters.netx import read_netx

    path = tmp_path / "conv.h5"
    with h5py.File(path, "w") as f:
        f["layer/0/type"] = b"input"
        f["layer/0/shape"] = np.array([1, 4, 4])
        f["layer/1/type"] = b"conv"
        f["layer/1/shape"] = np.array([2, 4, 4])
        f["layer/1/weight"] = np.ones((2, 1, 3, 3))
        f["layer/1/padding"] = np.array([1, 1])
        f["layer/1/groups"] = np.array(0)
        for k, v in {"type": b"CUBA", "iDecay": 4096, "vDecay": 0, "vThMant": 10}.items():
            f[f"layer/1/neuron/{k}"] = v
    with pytest.raises(SltFormatError, match="groups = 0"):
        read_netx(path)


def test_a_gzip_bomb_is_refused_from_its_dataspace(tmp_path: Path) -> None:
    path = tmp_path / "bomb.nir"
    slt.export(slt.load(TICKET), path, to="nir")
    with h5py.File(path, "a") as f:
        f.create_dataset("node/bomb", shape=(1 << 15, 1 << 15), dtype="f8", compression="gzip", fillvalue=0)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(SltFormatError, match="declare more than"):
        slt.api.load_any(path)


def _spin(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def test_a_reader_that_never_returns_is_stopped_at_the_time_limit() -> None:
    start = time.monotonic()
    with pytest.raises(SltFormatError, match="did not finish within 0.5 s \\(SLT_HDF5_TIMEOUT\\)"):
        in_child(_spin, 60, where="x.nir", timeout=0.5)
    assert time.monotonic() - start < 30
    assert in_child(_spin, 0, where="x.nir", timeout=30) == "done"


def test_a_reader_that_dies_is_a_typed_error() -> None:
    with pytest.raises(SltFormatError, match="died"):
        in_child(os._exit, 3, where="x.nir", timeout=30)


def test_the_childs_typed_errors_come_back_with_their_class(tmp_path: Path) -> None:
    def boom() -> None:
        raise SltImportError("a one-line reason")

    with pytest.raises(SltImportError, match="a one-line reason"):
        in_child(boom, where="x", timeout=30)


def test_slt_hdf5_timeout_is_read_and_checked(monkeypatch: pytest.MonkeyPatch, netx_file: Path) -> None:
    monkeypatch.setenv("SLT_HDF5_TIMEOUT", "0")
    assert timeout_seconds() == 0 and import_netx(netx_file).timesteps == 8  # in-process
    monkeypatch.setenv("SLT_HDF5_TIMEOUT", "soon")
    with pytest.raises(SltInputError, match="SLT_HDF5_TIMEOUT"):
        import_netx(netx_file)


# ============================================================ digests (finding 3)
@pytest.fixture(scope="module")
def nir_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nir") / "m.nir"
    slt.export(slt.load(TICKET), path, to="nir")
    return path


def _set_str(f, key: str, value: str) -> None:
    del f[key]
    f[key] = value.encode()


def _ticket_doc(f, change) -> None:
    import json

    doc = json.loads(f["node/metadata/slt.ticket"][()])
    change(doc)
    _set_str(f, "node/metadata/slt.ticket", json.dumps(doc, separators=(",", ":")))


NIR_EDITS = {
    "reset zero -> subtract": lambda f: _set_str(f, "node/nodes/1/metadata/slt.reset", "subtract"),
    "reset zero -> none": lambda f: _set_str(f, "node/nodes/3/metadata/slt.reset", "none"),
    "reset amount": lambda f: _replace(f, "node/nodes/1/metadata/slt.reset_amount",
                                       2 * f["node/nodes/1/metadata/slt.reset_amount"][()]),
    "timesteps": lambda f: _ticket_doc(f, lambda d: d.update(timesteps=9)),
    "encoding": lambda f: _ticket_doc(f, lambda d: d.update(encoding={"kind": "spikes", "seed": None})),
    "recurrent flag": lambda f: _ticket_doc(f, lambda d: d["edges"][2].__setitem__(2, True)),
    "layer encoding binary -> float32": lambda f: _set_str(f, "node/nodes/0/metadata/slt.encoding", "float32"),
}


def test_an_slt_nir_file_round_trips_with_its_digest(nir_file: Path, recwarn: pytest.WarningsRecorder) -> None:
    from slt_deploy.exporters.nir import import_nir

    assert len(h5py.File(nir_file, "r")["node/metadata/slt.digest"][()]) == 64
    ticket = import_nir(nir_file)
    x = (np.arange(4 * 64).reshape(4, 64) % 17 / 16).astype(np.float32)
    assert np.array_equal(slt.run(ticket, x).output, slt.run(slt.load(TICKET), x).output)
    assert not [w for w in recwarn if "digest" in str(w.message)]


@pytest.mark.parametrize("case", list(NIR_EDITS))
def test_edits_of_slt_metadata_in_nir_are_refused(nir_file: Path, tmp_path: Path, case: str) -> None:
    from slt_deploy.exporters.nir import import_nir

    path = _edited(nir_file, tmp_path / "edited.nir", NIR_EDITS[case])
    with pytest.raises(SltImportError) as info:
        import_nir(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_nir_file_without_digest_loads_with_a_warning(nir_file: Path, tmp_path: Path) -> None:
    from slt_deploy.exporters.nir import import_nir

    from slt_deploy.errors import SltWarning

    path = _edited(nir_file, tmp_path / "old.nir", lambda f: f["node/metadata"].__delitem__("slt.digest"))
    with pytest.warns(SltWarning, match="without a digest"):
        ticket = import_nir(path)
    assert ticket.timesteps == 8


def test_edits_of_a_netx_file_are_refused_by_its_digest(netx_file: Path, tmp_path: Path) -> None:
    def edit(f):
        w = f["layer/2/weight"][()]
        w[0, 0] = -w[0, 0] if w[0, 0] else 2
        _replace(f, "layer/2/weight", w)

    with pytest.raises(SltFormatError, match="does not match its slt digest"):
        import_netx(_edited(netx_file, tmp_path / "w.h5", edit))
    with pytest.raises(SltFormatError, match="does not match its slt digest"):
        import_netx(_edited(netx_file, tmp_path / "e.h5", lambda f: f.attrs.__setitem__("input_encoding", "spikes")))
