"""Tests of the .slt packed format: lossless round trips, hostile files, atomic writes, size."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import ticket_and_input

import slt_deploy
from slt_deploy import bits
from slt_deploy.errors import SltError, SltFormatError
from slt_deploy.format import FORMAT_VERSION, container, deserialize, layer_report, read_slt, serialize, write_slt
from slt_deploy.format.container import assemble, canonical_json
from slt_deploy.format.encodings import candidates
from slt_deploy.format.schema import ticket_to_graph
from slt_deploy.ir import (
    LI,
    LIF,
    BinaryWeights,
    Edge,
    Encoding,
    FloatWeights,
    Input,
    Int8Weights,
    Linear,
    Output,
    Ticket,
    sequential,
    tickets_equal,
)
from slt_deploy.reference import simulate


def hypo(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def small_ticket() -> Ticket:
    """A ticket using every weight encoding: rice, dense-signs, bitmask (int8) and dense-values."""
    rng = np.random.default_rng(7)
    sparse = BinaryWeights(rng.random((64, 40)) < 0.05, rng.random((64, 40)) < 0.5, np.float32(0.5))
    dense = BinaryWeights(np.ones((60, 64), bool), rng.random((60, 64)) < 0.5, rng.random(60).astype(np.float32))
    kept = rng.random((4, 60)) < 0.7
    kept[-1, -1] = True  # rice ties with the bitmask; ties go to the bitmask
    half = Int8Weights(kept, rng.integers(-128, 128, (4, 60)), np.float32(0.01))
    full = FloatWeights(np.ones((3, 4), bool), rng.normal(size=(3, 4)).astype(np.float32))
    layers = [
        Linear("fc1", sparse), LIF("lif1", shape=(64,), beta=0.9, reset="subtract"),
        Linear("fc2", dense, bias=rng.normal(size=60)), LIF("lif2", shape=(60,), beta=rng.random(60), threshold=0.7),
        Linear("fc3", half), LIF("lif3", shape=(4,), charge="decay_input", tau=2.0, reset="subtract_delayed"),
        Linear("fc4", full), LI("li", shape=(3,), beta=0.8),
    ]
    return sequential((40,), layers, 5, Encoding("rate", 3), {"source": "test", "ünï": "cødé"})


@pytest.fixture(scope="module")
def good_bytes() -> bytes:
    return serialize(small_ticket())


def parts(ticket: Ticket | None = None) -> tuple[dict, dict]:
    return ticket_to_graph(ticket or small_ticket())


def node_json(graph: dict, name: str) -> dict:
    return next(n for n in graph["nodes"] if n["name"] == name)


def raw_file(graph_text: str) -> bytes:
    """A container with valid checksums around an arbitrary graph text."""
    from safetensors.numpy import save

    meta = {"format": "slt", "format_version": "1", "graph": graph_text, "sha256": "{}",
            "graph_sha256": hashlib.sha256(graph_text.encode()).hexdigest()}
    return save({}, metadata=meta)


def rejects(data: bytes, *fragments: str) -> str:
    """Assert ``data`` is refused with a one-line SltFormatError containing ``fragments``."""
    with pytest.raises(SltFormatError) as info:
        deserialize(data)
    msg = str(info.value)
    assert "\n" not in msg and msg
    for f in fragments:
        assert f in msg, msg
    return msg


# ============================================================ lossless round trip
@hypo(120)
@given(ticket_and_input())
def test_round_trip_is_bit_identical_and_runs_identically(case: tuple[Ticket, np.ndarray]) -> None:
    ticket, x = case
    loaded = deserialize(serialize(ticket))
    assert tickets_equal(ticket, loaded)
    assert [n.name for n in loaded.nodes] == [n.name for n in ticket.nodes]
    assert loaded.edges == ticket.edges
    a, b = simulate(ticket, x, dtype=np.float32), simulate(loaded, x, dtype=np.float32)
    assert np.array_equal(a.output, b.output)
    assert serialize(loaded) == serialize(ticket)  # canonical: same ticket, same bytes


def test_round_trip_through_files_and_public_api(tmp_path: Path) -> None:
    t = small_ticket()
    write_slt(t, tmp_path / "a.slt")
    slt_deploy.save(t, str(tmp_path / "b.slt"))
    assert tickets_equal(read_slt(tmp_path / "a.slt"), t)
    assert tickets_equal(slt_deploy.load(tmp_path / "b.slt"), t)
    assert (tmp_path / "a.slt").read_bytes() == (tmp_path / "b.slt").read_bytes()


def test_every_encoding_is_used_and_values_keep_their_bits() -> None:
    enc = {r["name"]: r["encoding"] for r in layer_report(small_ticket())}
    assert enc == {"fc1": "rice", "fc2": "dense-signs", "fc3": "bitmask", "fc4": "dense-values"}
    values = np.array([[-1e-42, 3.5, -2.0, 1e-45]], np.float32)
    t = sequential((4,), [Linear("fc", FloatWeights(np.array([[1, 1, 0, 1]], bool), values)), LI("li", (1,))], 1)
    back = deserialize(serialize(t)).node("fc").weights.values
    assert back.tobytes() == np.array([[-1e-42, 3.5, 0.0, 1e-45]], np.float32).tobytes()


def test_all_zero_layer_and_broadcast_parameters() -> None:
    w = BinaryWeights(np.zeros((3, 70), bool), np.zeros((3, 70), bool), np.float32(-0.0))
    t = sequential((70,), [Linear("fc", w), LIF("lif", shape=(3,), beta=np.array([0.5, 0.5, -0.0]) + 0)], 2)
    graph, tensors = parts(t)
    assert node_json(graph, "fc")["weights"]["encoding"] == "rice"
    assert tensors["fc.index"].size == 0 and tensors["fc.alpha"].shape == (1,)
    assert tensors["lif.threshold"].shape == (1,) and tensors["lif.beta"].shape == (3,)
    assert tickets_equal(deserialize(serialize(t)), t)


def test_hand_worked_bit_layout() -> None:
    """Mask [1,0,1] with signs [-, ., +]: mask word 0b101, sign word 0b01, rice gaps 0,1 -> bits 0,10."""
    w = BinaryWeights(np.array([[1, 0, 1]], bool), np.array([[1, 0, 0]], bool), np.float32(1))
    by_enc = {c.meta["encoding"]: c for c in candidates("fc", w)}
    assert by_enc["bitmask"].tensors["fc.mask"].tolist() == [[5]]
    assert by_enc["bitmask"].tensors["fc.signs"].tolist() == [1]
    rice = by_enc["rice"]
    assert (rice.meta["rice_k"], rice.meta["rice_bits"]) == (0, 3)
    assert rice.tensors["fc.index"].tolist() == [0b010]
    assert all(a.dtype == np.dtype("<u8") for k, a in rice.tensors.items() if k != "fc.alpha")


def test_container_metadata_and_checksums_follow_the_spec(good_bytes: bytes) -> None:
    n = int.from_bytes(good_bytes[:8], "little")
    header = json.loads(good_bytes[8:8 + n])
    meta = header.pop("__metadata__")
    assert meta["format"] == "slt" and meta["format_version"] == "1" and FORMAT_VERSION == 2  # no token kinds: v1
    assert hashlib.sha256(meta["graph"].encode()).hexdigest() == meta["graph_sha256"]
    assert meta["graph"] == canonical_json(json.loads(meta["graph"]))
    sums = json.loads(meta["sha256"])
    body = good_bytes[8 + n:]
    assert set(sums) == set(header)
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        assert hashlib.sha256(body[lo:hi]).hexdigest() == sums[name]
        if name.endswith((".mask", ".signs", ".index")):
            assert info["dtype"] == "U64"


# ============================================================ bad files
def test_missing_file_directory_and_special_files(tmp_path: Path) -> None:
    with pytest.raises(SltFormatError, match="no such file"):
        read_slt(tmp_path / "nope.slt")
    with pytest.raises(SltFormatError, match="directory"):
        read_slt(tmp_path)
    (tmp_path / "empty.slt").write_bytes(b"")
    with pytest.raises(SltFormatError, match="too short"):
        read_slt(tmp_path / "empty.slt")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(SltFormatError, match="not a regular file"):
            read_slt(tmp_path / "fifo")  # must not block on open


def test_not_a_safetensors_file() -> None:
    rejects(b"PK\x03\x04 this is a zip file, not a ticket", "not a .slt file")
    rejects((10).to_bytes(8, "little") + b"[1,2,3]   ", "not a .slt file")
    rejects((1 << 40).to_bytes(8, "little") + b"{}", "header length")
    rejects((9).to_bytes(8, "little") + b'{"a":1} x', "not a .slt file")


def test_safetensors_file_without_slt_metadata() -> None:
    from safetensors.numpy import save

    rejects(save({"w": np.zeros(3, np.float32)}), "not a .slt file")
    rejects(save({"w": np.zeros(3, np.float32)}, metadata={"format": "pt"}), "not a .slt file")


def test_unknown_format_version(good_bytes: bytes) -> None:
    data = good_bytes.replace(b'"format_version":"1"', b'"format_version":"7"')
    assert data != good_bytes
    rejects(data, "unsupported .slt format version '7'")


def test_flipped_tensor_byte_names_the_tensor(good_bytes: bytes) -> None:
    n = int.from_bytes(good_bytes[:8], "little")
    header = json.loads(good_bytes[8:8 + n])
    lo, _ = header["fc2.signs"]["data_offsets"]
    data = bytearray(good_bytes)
    data[8 + n + lo] ^= 0x10
    rejects(bytes(data), "checksum mismatch in tensor 'fc2.signs'")


def test_corrupted_header_json(good_bytes: bytes) -> None:
    rejects(good_bytes.replace(b'\\"timesteps\\":5', b'\\"timesteps\\":6'), "checksum mismatch in the graph")
    rejects(good_bytes.replace(b'"dtype":"U64"', b'"dtype":"U6_"', 1), "corrupt")
    rejects(good_bytes.replace(b'"__metadata__":{', b'"__metadata__";{', 1), "corrupt header")


def test_every_single_byte_change_is_detected(good_bytes: bytes) -> None:
    original = small_ticket()
    for i in range(len(good_bytes)):
        for xor in (0x01, 0xA5):
            data = bytearray(good_bytes)
            data[i] ^= xor
            try:
                loaded = deserialize(bytes(data))
            except SltFormatError:
                continue
            assert tickets_equal(loaded, original), f"byte {i} ^ {xor:#x} changed the ticket silently"


def test_truncation_at_every_byte_offset(good_bytes: bytes) -> None:
    for cut in range(len(good_bytes)):
        with pytest.raises(SltFormatError):
            deserialize(good_bytes[:cut])
    rejects(good_bytes + b"\x00", "corrupt")


def test_tensor_shape_or_dtype_inconsistent_with_graph_names_the_node() -> None:
    graph, tensors = parts()
    bad = dict(tensors, **{"fc2.signs": np.zeros((60, 2), "<u8")})
    rejects(assemble(graph, bad), "node 'fc2'", "fc2.signs", "[60, 1]")
    bad = dict(tensors, **{"fc3.values": tensors["fc3.values"].astype(np.int16)})
    rejects(assemble(graph, bad), "node 'fc3'", "int16")
    bad = dict(tensors, **{"lif2.beta": np.zeros(59, np.float32)})
    rejects(assemble(graph, bad), "node 'lif2'", "lif2.beta")


def test_non_finite_or_out_of_range_values_name_the_node() -> None:
    graph, tensors = parts()
    values = tensors["fc4.values"].copy()
    values[0] = np.nan
    rejects(assemble(graph, dict(tensors, **{"fc4.values": values})), "node 'fc4'", "NaN")
    beta = tensors["lif2.beta"].copy()
    beta[0] = 2.0
    rejects(assemble(graph, dict(tensors, **{"lif2.beta": beta})), "invalid ticket", "lif2", "beta")


def test_missing_extra_and_unreferenced_tensors() -> None:
    graph, tensors = parts()
    rejects(assemble(graph, {k: v for k, v in tensors.items() if k != "fc4.values"}), "node 'fc4'", "missing")
    rejects(assemble(graph, dict(tensors, extra=np.zeros(1, np.float32))), "'extra' is not referenced")
    node_json(graph, "fc4")["weights"]["tensors"]["values"] = "fc3.values"
    rejects(assemble(graph, tensors), "referenced twice")


def test_set_padding_and_inconsistent_counts() -> None:
    graph, tensors = parts()
    words = tensors["fc3.mask"].copy()
    words[0, 0] |= np.uint64(1) << np.uint64(63)  # 60 columns: bit 63 is padding
    rejects(assemble(graph, dict(tensors, **{"fc3.mask": words})), "node 'fc3'", "padding")
    graph, tensors = parts()
    node_json(graph, "fc3")["weights"]["nnz"] += 1
    rejects(assemble(graph, tensors), "node 'fc3'")
    graph, tensors = parts()
    node_json(graph, "fc1")["weights"]["rice_k"] += 1
    rejects(assemble(graph, tensors), "node 'fc1'", "index stream")


def _peak_bytes(data: bytes) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(SltFormatError):
            deserialize(data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_declared_sizes_are_refused_before_allocating() -> None:
    # 10^12 neurons with broadcast parameters: a tiny, otherwise consistent file.
    t = sequential((2,), [LIF("lif", shape=(2,))], 1)
    graph, tensors = parts(t)
    node_json(graph, "input")["shape"] = [10**12]
    node_json(graph, "lif")["shape"] = [10**12]
    data = assemble(graph, tensors)
    assert len(data) < 4096
    msg = rejects(data, "more than a")
    assert _peak_bytes(data) < 32 << 20, msg
    # An all-zero rice layer of 10^6 x 10^6 synapses: 0 bytes of index.
    w = BinaryWeights(np.zeros((2, 3), bool), np.zeros((2, 3), bool), np.float32(1))
    graph, tensors = parts(sequential((3,), [Linear("fc", w), LIF("lif", shape=(2,))], 1))
    node_json(graph, "fc")["weights"]["shape"] = [10**6, 10**6]
    assert _peak_bytes(assemble(graph, tensors)) < 32 << 20
    # A rice stream claiming more positions than it has bits.
    graph, tensors = parts()
    node_json(graph, "fc1")["weights"]["nnz"] = 200
    rejects(assemble(graph, tensors), "node 'fc1'")
    # A bitmask claiming more rows than the file holds.
    graph, tensors = parts()
    node_json(graph, "fc3")["weights"]["shape"] = [4 * 10**5, 60]
    rejects(assemble(graph, tensors), "node 'fc3'")


def test_size_limits_of_file_and_header(tmp_path: Path, good_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.slt"
    path.write_bytes(good_bytes)
    monkeypatch.setattr(container, "MAX_FILE_BYTES", len(good_bytes) - 1)
    with pytest.raises(SltFormatError, match="limit"):
        read_slt(path)
    monkeypatch.undo()
    monkeypatch.setattr(container, "MAX_HEADER_BYTES", 64)
    rejects(good_bytes, "header length")


def test_invalid_graphs_are_format_errors() -> None:
    graph, tensors = parts()
    graph["edges"].append({"src": "lif2", "dst": "fc1", "recurrent": False})
    rejects(assemble(graph, tensors), "invalid ticket")
    graph, tensors = parts()
    graph["nodes"] = [n for n in graph["nodes"] if n["kind"] != "output"]
    graph["edges"] = [e for e in graph["edges"] if e["dst"] != "output"]
    rejects(assemble(graph, tensors), "invalid ticket", "Output")
    graph, tensors = parts()
    node_json(graph, "lif1")["reset"] = "explode"
    rejects(assemble(graph, tensors), "invalid ticket", "lif1")
    graph, tensors = parts()
    node_json(graph, "fc1")["weights"]["encoding"] = "zstd"
    rejects(assemble(graph, tensors), "node 'fc1'", "encoding")
    graph, tensors = parts()
    node_json(graph, "fc1")["kind"] = "attention"
    rejects(assemble(graph, tensors), "node 'fc1'", "unknown node kind")
    graph, tensors = parts()
    graph["timesteps"] = True
    rejects(assemble(graph, tensors), "timesteps")
    graph, tensors = parts()
    graph["metadata"] = [[[[[]]]]] * 2 + [json.loads("[" * 50 + "]" * 50)]
    rejects(assemble(graph, tensors), "metadata")
    rejects(raw_file("[" * 100000 + "]" * 100000), "corrupt")
    rejects(raw_file('{"nodes": 1e999}'), "graph")
    rejects(raw_file('{"timesteps": ' + "9" * 5000 + "}"), "corrupt")


# ============================================================ fuzz
def _mutate(data: bytes, op: str, pos: int, value: int, count: int) -> bytes:
    pos %= max(1, len(data))
    if not data:
        return bytes([value]) * count if op == "insert" else data
    if op == "flip":
        out = bytearray(data)
        out[pos] ^= value or 1
        return bytes(out)
    if op == "truncate":
        return data[:pos]
    if op == "insert":
        return data[:pos] + bytes([value]) * count + data[pos:]
    if op == "delete":
        return data[:pos] + data[pos + count:]
    out = bytearray(data)  # overwrite a run
    out[pos:pos + count] = bytes([value]) * len(out[pos:pos + count])
    return bytes(out)


_ops = st.tuples(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]),
                 st.integers(0, 1 << 20), st.integers(0, 255), st.integers(1, 16))


_FUZZ_BASE = serialize(small_ticket())
_FUZZ_TICKET = small_ticket()


@hypo(500)
@given(st.lists(_ops, min_size=1, max_size=4))
def test_fuzzed_files_only_raise_format_errors(ops: list) -> None:
    data = _FUZZ_BASE
    for op in ops:
        data = _mutate(data, *op)
    try:
        ticket = deserialize(data)
    except SltFormatError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(ticket, Ticket)
    assert tickets_equal(ticket, _FUZZ_TICKET)  # the checksums leave no room for silent changes


# ============================================================ atomic writes
def _dir_listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("failure", ["replace", "fsync", "serialize", "interrupt"])
def test_failed_write_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    path = tmp_path / "ticket.slt"
    old = small_ticket()
    write_slt(old, path)
    before = path.read_bytes()
    listing = _dir_listing(path)
    new = sequential((2,), [LIF("lif", shape=(2,))], 1)

    def boom(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt if failure == "interrupt" else OSError(28, "No space left on device")

    if failure == "replace":
        monkeypatch.setattr(os, "replace", boom)
    elif failure in ("fsync", "interrupt"):
        monkeypatch.setattr(os, "fsync", boom)
    else:
        monkeypatch.setattr(container, "assemble", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    expected = {"replace": SltError, "fsync": SltError, "serialize": RuntimeError, "interrupt": KeyboardInterrupt}
    with pytest.raises(expected[failure]):
        write_slt(new, path)
    assert path.read_bytes() == before
    assert _dir_listing(path) == listing
    monkeypatch.undo()
    write_slt(new, path)
    assert tickets_equal(read_slt(path), new)
    assert _dir_listing(path) == listing


def test_write_errors_are_slt_errors(tmp_path: Path) -> None:
    with pytest.raises(SltError, match="cannot write"):
        write_slt(small_ticket(), tmp_path / "no" / "such" / "dir.slt")
    with pytest.raises(SltError):
        write_slt("not a ticket", tmp_path / "x.slt")  # type: ignore[arg-type]


# ============================================================ size vs entropy bound
@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("p", [0.01, 0.03, 0.1, 0.5, 1.0])
def test_binary_layers_stay_near_the_entropy_bound(size: int, p: float, record_property) -> None:
    rng = np.random.default_rng(size + int(p * 1000))
    alpha = rng.random(size).astype(np.float32) + np.float32(0.1)  # one α per output channel
    w = BinaryWeights(rng.random((size, size)) < p, rng.random((size, size)) < 0.5, alpha)
    t = Ticket((Input("in", shape=(size,)), Linear("fc", w), Output("out")),
               (Edge("in", "fc"), Edge("fc", "out")), 1)
    (row,) = layer_report(t)
    bound = bits.entropy_bound_bits_per_synapse(row["density"])
    assert row["entropy_bound_bits_per_synapse"] == pytest.approx(bound)
    ratio = row["bits_per_synapse"] / bound
    record_property("ratio_vs_entropy_bound", ratio)
    print(f"{size}x{size} p={p}: {row['encoding']} {row['bits_per_synapse']:.4f} bits/synapse, "
          f"bound {bound:.4f}, ratio {ratio:.3f}")
    assert row["bits_per_synapse"] <= 1.3 * bound
    assert row["scale_bytes"] == 4 * size  # the α vector is priced apart from the synapses
    assert row["bits_per_synapse_total"] == pytest.approx(row["bits_per_synapse"] + 32 / size)
    assert row["ratio_vs_fp32"] == pytest.approx(32 / row["bits_per_synapse_total"])


def test_layer_report_of_file_matches_ticket(tmp_path: Path) -> None:
    t = small_ticket()
    write_slt(t, tmp_path / "t.slt")
    rows = layer_report(tmp_path / "t.slt")
    assert rows == layer_report(t)
    keys = {"name", "kind", "shape", "density", "encoding", "bytes", "bits_per_synapse",
            "entropy_bound_bits_per_synapse", "ratio_vs_fp32", "ratio_vs_entropy_bound"}
    assert all(keys <= set(r) for r in rows)
    fc3 = next(r for r in rows if r["name"] == "fc3")  # int8: H(p) + 8 p
    p = fc3["density"]
    assert fc3["entropy_bound_bits_per_synapse"] == pytest.approx(bits.binary_entropy(p) + 8 * p)
    graph, tensors = parts(t)
    assert fc3["bytes"] == tensors["fc3.mask"].nbytes + tensors["fc3.values"].nbytes + tensors["fc3.scale"].nbytes
