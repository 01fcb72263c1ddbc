"""``layerscope.diff``: statuses and figures on checkpoints with known edits, the same answer
from every format, per-node sums over the real module tree, and streaming readers that
give back what they read."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diff_models import EDITS, edited_pair, tiny_resnet, trained_state
from layerscope.diff import DiffCancelled, diff_checkpoints
from layerscope.diff.compare import bit_identical, compare
from layerscope.tree import build_tree

ARCH = "diff_models:tiny_resnet"


def norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.double()))


def expected_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return norm(b.double() - a.double()) / norm(a)


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return edited_pair()


@pytest.fixture(scope="module")
def files(tmp_path_factory, pair) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("diff")
    a, b = pair
    out = {"a.pt": folder / "a.pt", "b.pt": folder / "b.pt"}
    torch.save(a, out["a.pt"])
    torch.save(b, out["b.pt"])
    out["a.safetensors"], out["b.safetensors"] = folder / "a.safetensors", folder / "b.safetensors"
    save_file(a, out["a.safetensors"])
    save_file(b, out["b.safetensors"])
    return out


def test_every_status_and_relative_change_is_exact(files, pair):
    a, b = pair
    result = diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), arch=ARCH)
    statuses = {t.key: t.status for t in result.tensors}
    fine_tuned = {k for k in a if k.startswith(("layer4.", "fc.")) and a[k].is_floating_point()}
    fine_tuned.add("layer4.0.bn1.num_batches_tracked")
    expected = {k: "changed" if k in fine_tuned else "same" for k in a} | EDITS
    assert statuses == expected
    assert list(statuses)[-1] == "extra.scale"  # B's new keys come after A's, in B's order
    for t in result.tensors:
        if t.status in ("same", "changed", "retyped"):
            assert t.relative_change == pytest.approx(expected_change(a[t.key], b[t.key]), rel=1e-12, abs=0)
            assert t.max_abs_diff == float((b[t.key].double() - a[t.key].double()).abs().max())
        else:
            assert t.relative_change is None and t.max_abs_diff is None and t.cosine is None
    drift = result.tensor("bn1.running_mean")
    assert drift.max_abs_diff == pytest.approx(0.25, abs=1e-7)
    assert drift.cosine == pytest.approx(
        float(
            torch.nn.functional.cosine_similarity(a["bn1.running_mean"].double(), b["bn1.running_mean"].double(), dim=0)
        ),
        rel=1e-12,
    )
    half = result.tensor("layer3.0.bn2.weight")
    assert (half.a.dtype, half.b.dtype) == ("float32", "float16") and 0 < half.relative_change < 1e-3
    reshaped = result.tensor("layer2.1.conv2.weight")
    assert (reshaped.a.shape, reshaped.b.shape) == ((4, 4, 3, 3), (4, 4, 1, 1))
    assert result.tensor("layer4.0.bn1.num_batches_tracked").status == "changed"


def test_nodes_are_the_tree_s_own_with_subtree_sums(files, pair):
    a, b = pair
    result = diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), arch=ARCH)
    tree = build_tree(tiny_resnet())
    assert [(n.name, n.access, n.class_name) for n in result.nodes] == [(n.name, n.access, n.class_name) for n in tree]
    layer4 = result.node("layer4")
    floats = [k for k in a if k.startswith("layer4.") and a[k].is_floating_point()]
    delta = sum(norm(b[k].double() - a[k].double()) ** 2 for k in floats)
    assert layer4.relative_change == pytest.approx(
        math.sqrt(delta) / math.sqrt(sum(norm(a[k]) ** 2 for k in floats)), rel=1e-12
    )
    assert (layer4.status, layer4.changed, layer4.total) == ("changed", 21, 24)  # 20 floats + one step counter
    assert (result.node("layer3").status, result.node("layer3").changed) == ("changed", 1)  # the float16 cast
    assert result.node("layer3.1").status == "same" and result.node("layer3.1").relative_change == 0.0
    assert result.node("layer1.0.conv1").counts == {"removed": 1} and result.node("layer1.0.conv1").mark == "−"
    assert result.node("layer4.0.relu").total == 0 and result.node("layer4.0.relu").mark == ""
    assert result.node("fc").relative_change == pytest.approx(
        math.sqrt(sum(norm(b[k] - a[k]) ** 2 for k in ("fc.weight", "fc.bias")))
        / math.sqrt(sum(norm(a[k]) ** 2 for k in ("fc.weight", "fc.bias"))),
        rel=1e-12,
    )
    assert len(a) == 104
    assert result.counts() == {"same": 77, "changed": 24, "added": 1, "removed": 1, "reshaped": 1, "retyped": 1}
    assert [n.name for n in result.frozen()][:4] == ["conv1", "layer1.1", "layer2.0", "layer3.1"]
    assert result.unplaced == ("extra.scale",) and "1 key(s) name no module of TinyResNet" in result.notes[0]
    assert [t.key for t in result.tensors_of(result.node("fc"))] == ["fc.weight", "fc.bias"]
    moved, frozen_weights = result.drifted_statistics()
    assert [n.name for n in moved] == ["bn1", *(f"layer4.{b}.bn{i}" for b in (0, 1) for i in (1, 2))]
    assert [n.name for n in frozen_weights] == ["bn1"]  # its weight and bias are bit-identical


def test_the_same_answer_from_pt_and_safetensors(files):
    reference = diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), arch=ARCH)
    for a, b in (("a.safetensors", "b.safetensors"), ("a.pt", "b.safetensors"), ("a.safetensors", "b.pt")):
        other = diff_checkpoints(str(files[a]), str(files[b]), arch=ARCH)
        assert {t.key: t for t in other.tensors} == {t.key: t for t in reference.tensors}
        assert [replace(n, keys=tuple(sorted(n.keys))) for n in other.nodes] == [
            replace(n, keys=tuple(sorted(n.keys))) for n in reference.nodes
        ]  # a safetensors header sorts its keys


def test_without_an_architecture_nodes_come_from_key_prefixes(files, pair):
    result = diff_checkpoints(str(files["a.safetensors"]), str(files["b.safetensors"]))
    assert result.architecture is None
    depth1 = [n.name for n in result.nodes if n.depth == 1]
    assert depth1 == ["bn1", "conv1", "fc", *(f"layer{i}" for i in range(1, 5)), "extra"]  # the header's, then B's
    assert result.node("layer2").access == "model.layer2"
    assert result.node("layer2.1.conv2").access == "model.layer2[1].conv2"
    with_arch = diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), arch=ARCH)
    for name in ("layer4", "layer4.1.bn2", "fc", "layer3"):
        assert result.node(name).relative_change == with_arch.node(name).relative_change
        mine, theirs = result.node(name), with_arch.node(name)
        assert (mine.changed, mine.total) == (theirs.changed, theirs.total)
    assert result.node("extra").mark == "+"
    assert result.runs[result.node("layer3").index] == ((result.node("layer3.0").index, result.node("layer3.1").index),)


def test_a_whole_model_pickle_gives_its_own_tree_with_trust(tmp_path):
    model = tiny_resnet()
    torch.save(model, tmp_path / "whole.pt")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    result = diff_checkpoints(str(tmp_path / "whole.pt"), str(tmp_path / "state.pt"), trust=True)
    assert result.architecture == "TinyResNet" and result.root.status == "same" and result.root.mark == "="


def test_tied_weights_stay_readable_after_their_pages_are_given_back(tmp_path):
    shared = torch.randn(300, 64)
    state = {"embed.weight": shared, "head.weight": shared, "head.bias": torch.randn(300)}
    torch.save(state, tmp_path / "a.pt")
    torch.save({k: v.clone() for k, v in state.items()}, tmp_path / "b.pt")
    result = diff_checkpoints(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))
    assert [t.status for t in result.tensors] == ["same"] * 3
    assert result.tensor("head.weight").norm_sq == pytest.approx(norm(shared) ** 2, rel=1e-12)


def test_bit_identity_is_byte_identity():
    zero, negative_zero = torch.zeros(3), -torch.zeros(3)
    assert not bit_identical(zero, negative_zero)
    assert compare("k", zero, negative_zero).status == "changed"
    nan = torch.tensor([float("nan"), 1.0])
    assert compare("k", nan, nan.clone()).status == "same"
    assert compare("k", torch.ones(2), torch.ones(2, dtype=torch.float64)).status == "retyped"


def test_comparing_never_writes_to_either_tensor():
    for dtype in (torch.float64, torch.float32, torch.complex128):
        a, b = torch.randn(5000, dtype=dtype), torch.randn(5000, dtype=dtype)
        kept_a, kept_b = a.clone(), b.clone()
        assert compare("k", a, b).status == "changed"
        assert torch.equal(a, kept_a) and torch.equal(b, kept_b)


def test_large_tensors_are_summed_in_slices_exactly(monkeypatch):
    import layerscope.diff.compare as compare_module

    a, b = torch.randn(1000, 7), torch.randn(1000, 7)
    whole = compare("k", a, b)
    monkeypatch.setattr(compare_module, "CHUNK", 97)  # 73 slices, the last one short
    sliced = compare("k", a, b)
    assert sliced.relative_change == pytest.approx(whole.relative_change, rel=1e-14)
    assert sliced.max_abs_diff == whole.max_abs_diff and sliced.cosine == pytest.approx(whole.cosine, rel=1e-14)


def test_progress_and_cancel(files):
    seen: list[tuple[int, int]] = []
    diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 105) and seen[-1] == (105, 105) and len(seen) == 106  # 104 keys of A, 1 added
    with pytest.raises(DiffCancelled):
        diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), cancel=lambda: len(seen) > 0)


def test_an_app_tree_is_used_as_given(files):
    tree = build_tree(tiny_resnet())
    result = diff_checkpoints(str(files["a.pt"]), str(files["b.pt"]), tree=tree)
    assert len(result.nodes) == len(tree) and result.nodes[tree.get("layer4").index].name == "layer4"


def test_a_state_with_int_only_nodes_has_no_figure(tmp_path):
    a = trained_state()
    b = dict(a, **{"bn1.num_batches_tracked": torch.tensor(8)})
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    result = diff_checkpoints(str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))
    assert result.tensor("bn1.num_batches_tracked").relative_change == pytest.approx(1 / 7)
    assert result.node("bn1").relative_change == 0.0 and result.node("bn1").status == "changed"


def test_pages_are_only_dropped_where_they_map_the_file(tmp_path):
    from layerscope.diff.pages import FileMapping

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.arange(1 << 20, dtype=torch.float32)}, path)
    in_memory = torch.arange(1 << 20, dtype=torch.float32)  # anonymous memory: dropping it would zero it
    mapping = FileMapping(path)
    mapping.release(in_memory)
    assert torch.equal(in_memory, torch.arange(1 << 20, dtype=torch.float32))
    assert mapping.unmapped == {in_memory.untyped_storage().data_ptr()}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        mapped = handle.get_tensor("w")
        mapping.release(mapped)  # the file's own pages: dropped, and read back from the file when touched
        assert mapping.ranges and not mapping.unmapped - {in_memory.untyped_storage().data_ptr()}
        assert torch.equal(mapped, torch.arange(1 << 20, dtype=torch.float32))
