"""PyTorch checkpoints as untrusted input: CRC-32 checked before torch.load, masks exactly 0/1,
expanded (stride-0) and overlapping tensors refused before any arithmetic allocates."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")

from slt_deploy.errors import SltImportError  # noqa: E402
from slt_deploy.importers.torch import load_checkpoint  # noqa: E402


def _pruned_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    prune.l1_unstructured(net[0], "weight", amount=0.6)
    return net.state_dict()


def _data_members(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as zf:
        return [i for i in zf.infolist() if "/data/" in i.filename]


def test_a_flipped_byte_in_tensor_data_is_refused_naming_the_member(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(_pruned_state(), path)
    member = max(_data_members(path), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    h = member.header_offset  # data start: the local header (30 bytes) + its own name and extra field lengths
    start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + int.from_bytes(raw[h + 28:h + 30], "little")
    raw[start + member.file_size // 2] ^= 0x10
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(raw))
    assert torch.load(bad, weights_only=True)  # torch itself loads the changed network without a word
    with pytest.raises(SltImportError, match=f"member '{member.filename}' fails its CRC-32 check"):
        load_checkpoint(bad)


def test_seeded_byte_flips_never_change_the_network_silently(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    state = _pruned_state()
    torch.save(state, path)
    want = load_checkpoint(path)
    raw = path.read_bytes()
    rng = random.Random(17)
    outcomes = {"typed": 0, "unchanged": 0}
    for case in range(70):
        mutated = bytearray(raw)
        for _ in range(rng.choice((1, 1, 2, 4))):
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        bad = tmp_path / f"m{case}.pt"
        bad.write_bytes(bytes(mutated))
        try:
            got = load_checkpoint(bad)
        except SltImportError as exc:
            assert "\n" not in str(exc)
            outcomes["typed"] += 1
            continue
        assert got.state_dict.keys() == want.state_dict.keys() and got.masks.keys() == want.masks.keys()
        assert all(torch.equal(got.state_dict[k], want.state_dict[k]) for k in want.state_dict), f"case {case}"
        assert all(torch.equal(got.masks[k], want.masks[k]) for k in want.masks), f"case {case}"
        outcomes["unchanged"] += 1
    assert outcomes["typed"] > 0


@pytest.mark.parametrize("value", [0.5, -1.0, float("nan"), 2.0])
def test_prune_masks_must_be_exactly_0_or_1(tmp_path: Path, value: float) -> None:
    state = _pruned_state()
    state["0.weight_mask"] = state["0.weight_mask"].clone()
    state["0.weight_mask"][0, 0] = value
    path = tmp_path / "mask.pt"
    torch.save(state, path)
    with pytest.raises(SltImportError, match="prune mask 0.weight_mask holds values other than 0 and 1"):
        load_checkpoint(path)


def test_bool_and_0_1_masks_still_load(tmp_path: Path) -> None:
    state = _pruned_state()
    keep = state["0.weight_mask"] != 0
    for mask in (keep, keep.to(torch.float64), keep.to(torch.int8)):
        path = tmp_path / "ok.pt"
        torch.save({**state, "0.weight_mask": mask}, path)
        assert torch.equal(load_checkpoint(path).masks["0.weight"], keep)


def test_an_expanded_stride_0_prune_pair_is_refused_before_allocation(tmp_path: Path) -> None:
    n = 2 ** 16
    path = tmp_path / "expanded.pt"
    torch.save({"0.weight_orig": torch.zeros(1).expand(n, n), "0.weight_mask": torch.ones(1).expand(n, n)}, path)
    assert path.stat().st_size < 100_000
    with pytest.raises(SltImportError, match="expanded view"):
        load_checkpoint(path)


def test_overlapping_strides_are_refused(tmp_path: Path) -> None:
    base = torch.arange(10, dtype=torch.float32)
    path = tmp_path / "overlap.pt"
    torch.save({"w": base.as_strided((5, 5), (1, 1))}, path)
    with pytest.raises(SltImportError, match="overlapping strides"):
        load_checkpoint(path)


def test_a_zip_declaring_huge_members_is_refused_from_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (1 << 20))
    from slt_deploy.untrusted import verify_torch_zip

    with pytest.raises(SltImportError, match="above the 1000-byte limit"):
        verify_torch_zip(path, max_bytes=1000)
