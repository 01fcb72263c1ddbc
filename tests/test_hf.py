"""Hugging Face folders: tiny transformers models saved with ``save_pretrained``, opened
like any other spec (counts, labels, preprocessing, target layers, maps), config-only
meta builds, the local hub cache, and code in a folder refused without ``--trust``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from hf_configs import LLAMA_2_70B  # noqa: E402
from layerscope.cam import compute_cam, suggest_target_layer  # noqa: E402
from layerscope.cli.main import main  # noqa: E402
from layerscope.errors import LayerscopeError  # noqa: E402
from layerscope.io.imaging import load_image, preprocess, to_original  # noqa: E402
from layerscope.models import Preprocess, load_model  # noqa: E402
from layerscope.running.probe import probe_shapes  # noqa: E402
from layerscope.tree import build_tree  # noqa: E402

SAMPLES = Path(__file__).parent.parent / "app" / "layerscope" / "samples"
LABELS = {0: "tabby", 1: "espresso", 2: "cup"}


def _tiny_vit() -> transformers.ViTForImageClassification:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    return transformers.ViTForImageClassification(config).eval()


def _tiny_llama() -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory) -> tuple[Path, transformers.ViTForImageClassification]:
    folder = tmp_path_factory.mktemp("hf") / "tiny-vit"
    model = _tiny_vit()
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory) -> tuple[Path, transformers.LlamaForCausalLM]:
    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    model = _tiny_llama()
    model.save_pretrained(folder)
    return folder, model


def test_folder_loads_the_saved_weights_with_exact_counts_and_id2label(vit_folder):
    folder, original = vit_folder
    loaded = load_model(str(folder))
    assert type(loaded.model).__name__ == "ViTForImageClassification"
    assert loaded.source == "huggingface" and loaded.pretrained and not loaded.model.training
    assert loaded.weights == str(folder / "model.safetensors")
    expected = sum(p.numel() for p in original.parameters())
    assert expected == 48_195
    assert build_tree(loaded.model).root.total_params == expected
    assert sum(p.numel() for p in loaded.model.parameters()) == expected
    saved = original.state_dict()
    assert all(torch.equal(t, saved[k]) for k, t in loaded.model.state_dict().items())
    assert loaded.categories == ["tabby", "espresso", "cup"]


def test_preprocessing_comes_from_the_saved_image_processor(vit_folder):
    folder, _ = vit_folder
    loaded = load_model(f"hf:{folder}")
    assert loaded.preprocess.resize == (224, 224) and loaded.preprocess.crop == (224, 224)
    assert loaded.preprocess.mean == (0.5, 0.5, 0.5) and loaded.preprocess.std == (0.5, 0.5, 0.5)
    image = load_image(SAMPLES / "chelsea.png")
    ours, geometry = preprocess(image, loaded.preprocess)
    theirs = transformers.AutoImageProcessor.from_pretrained(folder)(image, return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape == (1, 3, 224, 224)
    assert (ours - theirs).abs().max() < 0.02  # the same numbers up to 8-bit rounding of the resize
    assert geometry.resized == (224, 224)  # stretched, not cropped: the whole photo is seen


def test_convnext_processor_resizes_then_crops(tmp_path):
    from layerscope.models.sources.hf_folder import preprocess_from_folder

    transformers.ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875).save_pretrained(tmp_path)
    spec = preprocess_from_folder(tmp_path, {})
    assert (spec.resize, spec.crop) == (256, (224, 224))
    image = load_image(SAMPLES / "coffee.png")
    ours, _ = preprocess(image, spec)
    theirs = transformers.AutoImageProcessor.from_pretrained(tmp_path)(image, return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape and (ours - theirs).abs().mean() < 0.02  # bicubic there, bilinear here


def test_gradcam_at_the_suggested_layer_matches_a_hand_computed_map(vit_folder):
    folder, _ = vit_folder
    loaded = load_model(str(folder))
    model = loaded.model
    tree = build_tree(model)
    layer = suggest_target_layer(model, tree)
    assert layer == "vit.layers.1.layernorm_before"
    assert tree.get(layer).access_negative == "model.vit.layers[-1].layernorm_before"
    image = load_image(SAMPLES / "chelsea.png")
    x, geometry = preprocess(image, loaded.preprocess)
    result = compute_cam(model, x, layer, target="cup", categories=loaded.categories)
    assert result.target == 2 and result.target_name == "cup"
    assert result.layout == "tokens → 14×14 grid, 32 channels, 1 prefix token(s)"
    assert result.heatmap.shape == (224, 224) and result.raw.shape == (14, 14)
    assert to_original(result.heatmap, geometry).shape == (image.height, image.width)

    captured = {}
    module = model.get_submodule(layer)
    handle = module.register_forward_hook(lambda _m, _i, out: captured.setdefault("a", out))
    try:
        logits = model(x).logits
        (grad,) = torch.autograd.grad(logits[0, 2], captured["a"])
    finally:
        handle.remove()
    acts = captured["a"][0, 1:].detach().T.reshape(32, 14, 14)
    grads = grad[0, 1:].T.reshape(32, 14, 14)
    cam = (grads.mean(dim=(1, 2))[:, None, None] * acts).sum(0).relu()
    assert torch.allclose(result.raw, cam, atol=1e-5)
    up = F.interpolate(cam[None, None], size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
    up = (up - up.min()) / (up.max() - up.min())
    assert torch.allclose(result.heatmap, up, atol=1e-5)
    assert result.heatmap.flatten().argmax() == up.flatten().argmax()


def test_class_index_and_unknown_name_against_id2label(vit_folder):
    folder, _ = vit_folder
    loaded = load_model(str(folder))
    x = torch.zeros(1, 3, 224, 224)
    layer = "vit.layers.1.layernorm_before"
    assert compute_cam(loaded.model, x, layer, target=1, categories=loaded.categories).target_name == "espresso"
    with pytest.raises(LayerscopeError, match="unknown class name 'cupp'; closest: cup"):
        compute_cam(loaded.model, x, layer, target="cupp", categories=loaded.categories)
    with pytest.raises(LayerscopeError, match="the model has 3 classes"):
        compute_cam(loaded.model, x, layer, target=3, categories=loaded.categories)


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("deit", "deit.layers.1.layernorm_before"),
        ("swin", "swin.encoder.layers.1.blocks.1.layernorm_before"),
        ("convnext", "convnext.encoder.stages.1"),
        ("resnet", "resnet.encoder.stages.1"),
    ],
)
def test_suggested_layers_for_hugging_face_vision_families(family, expected):
    t = transformers
    models = {
        "deit": lambda: t.DeiTForImageClassificationWithTeacher(
            t.DeiTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3)
        ),
        "swin": lambda: t.SwinForImageClassification(
            t.SwinConfig(embed_dim=8, depths=[1, 2], num_heads=[1, 2], num_labels=3)
        ),
        "convnext": lambda: t.ConvNextForImageClassification(
            t.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 2], num_labels=3)
        ),
        "resnet": lambda: t.ResNetForImageClassification(
            t.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 2], num_labels=3)
        ),
    }
    torch.manual_seed(0)
    model = models[family]().eval()
    assert suggest_target_layer(model) == expected
    result = compute_cam(model, torch.rand(1, 3, 224, 224), expected, target=0)
    grid = {"deit": (14, 14), "swin": (28, 28), "convnext": (28, 28), "resnet": (28, 28)}[family]
    assert tuple(result.raw.shape) == grid and result.heatmap.shape == (224, 224)


def test_text_model_tree_counts_and_shapes_with_token_ids(llama_folder):
    folder, original = llama_folder
    loaded = load_model(str(folder))
    expected = sum(p.numel() for p in original.parameters())
    assert expected == 24_992
    assert build_tree(loaded.model).root.total_params == expected
    assert loaded.categories is None  # a causal LM's placeholder LABEL_0/LABEL_1 are no class names
    shapes = probe_shapes(loaded.model, (128,), torch.long)
    assert shapes["lm_head"].shape == (1, 128, 100)
    assert shapes["model.layers.1.mlp"].shape == (1, 128, 32)
    with pytest.raises(LayerscopeError, match=r"text model takes token ids: --input 128:long"):
        probe_shapes(loaded.model, (3, 224, 224))


def test_cost_of_a_config_only_llama_with_token_ids(tmp_path):
    from layerscope.cost import probe_cost

    (tmp_path / "config.json").write_text(json.dumps({**LLAMA_2_70B, "num_hidden_layers": 2}))
    model = load_model(str(tmp_path)).model  # meta: the pass costs no arithmetic
    _, table = probe_cost(model, (128,), torch.long)
    assert table.get("lm_head").macs == 128 * 8192 * 32000
    assert table.get("model.layers.1.mlp").macs == 128 * 3 * 8192 * 28672


def test_gradcam_on_a_text_model_says_it_needs_a_spatial_layer(llama_folder):
    folder, _ = llama_folder
    loaded = load_model(str(folder))
    message = r"LlamaForCausalLM takes input_ids \(a text model\), not an image; Grad-CAM needs a layer with a spatial"
    with pytest.raises(LayerscopeError, match=message):
        compute_cam(loaded.model, torch.rand(1, 3, 224, 224), "model.layers.1")
    with pytest.raises(LayerscopeError, match=message):
        suggest_target_layer(loaded.model)


def test_state_dict_style_names_resolve_through_the_model_child(llama_folder):
    folder, _ = llama_folder
    tree = build_tree(load_model(str(folder)).model)
    assert tree.resolve("model.model.layers[-1]").name == "model.layers.1"
    assert tree.resolve("model.model.layers.1.mlp").name == "model.layers.1.mlp"
    assert tree.resolve("model.layers.1.mlp").name == "model.layers.1.mlp"  # as the state_dict spells it
    assert tree.resolve("model.layers.1.mlp").access == "model.model.layers[1].mlp"


def test_config_only_folder_builds_llama2_70b_on_meta_with_exact_counts(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_2_70B))
    loaded = load_model(str(tmp_path))
    assert loaded.device.type == "meta" and not loaded.pretrained and loaded.weights == "none"
    per_layer = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192
    expected = 80 * per_layer + 2 * 32000 * 8192 + 8192
    assert expected == 68_976_648_192
    assert sum(p.numel() for p in loaded.model.parameters()) == expected
    tree = build_tree(loaded.model)
    assert tree.root.total_params == expected
    assert tree.resolve("model.layers.79.mlp").total_params == 3 * 8192 * 28672
    assert tree.resolve("model.model.layers[-1].mlp").name == "model.layers.79.mlp"
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float16}  # the checkpoint's dtype: its bytes


def _fake_hub_cache(cache: Path, repo: str, source: Path) -> Path:
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("0123abc")
    return snapshot


def test_org_name_comes_from_the_local_hub_cache_and_is_never_downloaded(vit_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    folder, _ = vit_folder
    snapshot = _fake_hub_cache(tmp_path, "acme/tiny-vit", folder)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    loaded = load_model("hf:acme/tiny-vit")
    assert loaded.weights == str(snapshot / "model.safetensors") and loaded.categories[2] == "cup"
    assert load_model("hf:acme/tiny-vit@0123abc").weights == loaded.weights
    with pytest.raises(LayerscopeError, match=r"acme/other is not in the local Hugging Face cache .*never downloads"):
        load_model("hf:acme/other")
    with pytest.raises(LayerscopeError, match="never downloads"):
        load_model("hf:acme/tiny-vit", weights="DEFAULT")
    with pytest.raises(LayerscopeError, match=r"no such folder: acme/tiny-vit@../../etc"):
        load_model("hf:acme/tiny-vit@../../etc")  # a revision never walks out of the cache


def _remote_code_folder(folder: Path, marker: Path, *, auto_map: bool = True) -> Path:
    folder.mkdir()
    config = {"model_type": "evil", "architectures": ["EvilModel"], "width": 4}
    if auto_map:
        config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PreTrainedConfig\n\n\n"
        "class EvilConfig(PreTrainedConfig):\n    model_type = 'evil'\n\n"
        "    def __init__(self, width=4, **kwargs):\n        self.width = width\n        super().__init__(**kwargs)\n"
    )
    (folder / "modeling_evil.py").write_text(
        "import torch\nfrom transformers import PreTrainedModel\nfrom .configuration_evil import EvilConfig\n\n\n"
        "class EvilModel(PreTrainedModel):\n    config_class = EvilConfig\n\n"
        "    def __init__(self, config):\n        super().__init__(config)\n"
        "        self.proj = torch.nn.Linear(config.width, 2)\n        self.post_init()\n\n"
        "    def forward(self, x):\n        return self.proj(x)\n"
    )
    return folder


def test_remote_code_is_refused_without_trust_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    folder = _remote_code_folder(tmp_path / "evil", marker)
    with pytest.raises(
        LayerscopeError,
        match=r"ships its own Python code \(auto_map in config.json, "
        r"configuration_evil.py, modeling_evil.py\).*--trust",
    ):
        load_model(str(folder))
    assert main(["stats", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ships its own Python code" in err
    plain = _remote_code_folder(tmp_path / "python-only", marker, auto_map=False)
    with pytest.raises(LayerscopeError, match=r"ships its own Python code \(configuration_evil.py"):
        load_model(f"hf:{plain}")
    assert not marker.exists()


def test_remote_code_runs_with_trust(tmp_path, monkeypatch):
    from transformers import dynamic_module_utils

    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    marker = tmp_path / "marker"
    folder = _remote_code_folder(tmp_path / "evil", marker)
    loaded = load_model(str(folder), trust=True)
    assert marker.read_text() == "ran"
    assert type(loaded.model).__name__ == "EvilModel" and loaded.device.type == "meta"
    assert build_tree(loaded.model).root.total_params == 4 * 2 + 2


def test_pickled_weights_need_trust(tmp_path, vit_folder):
    folder, original = vit_folder
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes((folder / "config.json").read_bytes())
    torch.save(original.state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(LayerscopeError, match=r"only as a pickle \(pytorch_model.bin\).*--trust"):
        load_model(str(pickled))
    loaded = load_model(str(pickled), trust=True)
    assert loaded.pretrained and loaded.weights == str(pickled / "pytorch_model.bin")
    assert torch.equal(loaded.model.classifier.weight, original.classifier.weight)


def test_weights_that_do_not_fit_are_named(tmp_path, vit_folder):
    folder, _ = vit_folder
    other = tmp_path / "wider"
    other.mkdir()
    config = json.loads((folder / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    (other / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(LayerscopeError, match=r"do not fit ViTForImageClassification: .*mis-shaped"):
        load_model(str(other))


def test_cli_tree_of_a_folder(vit_folder, capsys):
    folder, _ = vit_folder
    assert main(["tree", str(folder), "--depth", "3", "--shapes"]) == 0
    out = capsys.readouterr().out
    assert "48,195 parameters" in out
    assert "layers  ModuleList" in out and "ViTLayer ×2" in out
    assert "classifier  Linear  99  → 1×3" in out


async def test_app_draws_the_map_of_a_folder_and_hints_token_ids_for_a_text_model(vit_folder, llama_folder, tmp_path):
    from layerscope.tui.app import LayerscopeApp
    from layerscope.tui.widgets.gradcam import CamPanel
    from tui_helpers import notifications, screen_text, settle

    folder, _ = vit_folder
    app = LayerscopeApp(load_model(str(folder)), spec=str(folder), save_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        view = app.query_one(CamPanel).view
        assert view.result.layer == "vit.layers.1.layernorm_before"
        assert view.heat.shape == (300, 451)  # chelsea.png's own size
        assert f"map gradcam for {view.result.target}" in screen_text(app)  # the layer line names it
        assert view.result.layer == "vit.layers.1.layernorm_before"
    folder, _ = llama_folder
    app = LayerscopeApp(load_model(str(folder)), spec=str(folder), save_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert any("a text model takes token ids: --input 128:long" in n for n in notifications(app))
        assert "24,992 params" in screen_text(app)  # the tree and the figures are there all the same


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_a_crafted_pickle_in_a_folder_runs_nothing(tmp_path, vit_folder, name):
    from evil_files import pickle_file

    folder, _ = vit_folder
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_bytes((folder / "config.json").read_bytes())
    marker = tmp_path / "pwned"
    pickle_file(evil / name, marker)
    message = "only as a pickle" if name.endswith(".bin") else "cannot load the weights of"
    with pytest.raises(LayerscopeError, match=message):
        load_model(str(evil))
    if name.endswith(".safetensors"):  # read as safetensors, even with --trust: never unpickled
        with pytest.raises(LayerscopeError, match="cannot load the weights of"):
            load_model(str(evil), trust=True)
    assert not marker.exists()


def test_names_from_the_checkpoint_and_transformers_4_code_reach_the_renamed_modules(vit_folder):
    """transformers 5 calls ``vit.encoder.layer`` ``vit.layers`` (the file keeps the old keys);
    names copied from the file, 4.x code or pytorch-grad-cam's README still resolve."""
    folder, _ = vit_folder
    model = load_model(str(folder)).model
    tree = build_tree(model)
    assert tree.resolve("model.vit.encoder.layer[-1].layernorm_before").name == "vit.layers.1.layernorm_before"
    assert tree.resolve("vit.encoder.layer.0.attention.attention.query").name == "vit.layers.0.attention.q_proj"
    assert tree.resolve("vit.encoder.layer.1.output.dense").name == "vit.layers.1.mlp.fc2"
    with pytest.raises(LayerscopeError, match=r"no layer 'vit.encoder.layer.9.output.dense' in ViTForImage"):
        tree.resolve("vit.encoder.layer.9.output.dense")
    x = torch.zeros(1, 3, 224, 224)
    cam = compute_cam(model, x, "model.vit.encoder.layer[-1].layernorm_before")
    assert cam.layer == "vit.layers.1.layernorm_before"
    assert build_tree(torch.nn.Sequential(torch.nn.ReLU())).renamer is None  # only transformers models


def test_cam_of_a_folder_without_weights_says_why(tmp_path, vit_folder, llama_folder):
    from layerscope.cam.photo import PhotoExplainer

    folder, _ = vit_folder
    (tmp_path / "config.json").write_bytes((folder / "config.json").read_bytes())
    loaded = load_model(str(tmp_path))
    assert loaded.device.type == "meta" and build_tree(loaded.model).root.total_params == 48_195
    with pytest.raises(LayerscopeError, match="built on the meta device .*CAMs need real weights"):
        PhotoExplainer(loaded, SAMPLES / "chelsea.png")
    with pytest.raises(LayerscopeError, match=r"takes input_ids \(a text model\)"):
        PhotoExplainer(load_model(str(llama_folder[0])), SAMPLES / "chelsea.png")


def test_sharded_weights_and_a_config_without_architectures(tmp_path, vit_folder):
    folder, original = vit_folder
    sharded = tmp_path / "sharded"
    original.save_pretrained(sharded, max_shard_size="100KB")
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 1 and (sharded / "model.safetensors.index.json").exists()
    loaded = load_model(str(sharded))
    assert loaded.weights == f"{sharded / shards[0]} + {len(shards) - 1} more shard(s)"
    assert torch.equal(loaded.model.classifier.weight, original.classifier.weight)
    config = json.loads((folder / "config.json").read_text())
    del config["architectures"]
    (sharded / "config.json").write_text(json.dumps(config))
    # no architecture: the AutoModel base model, whose pooler the classifier's file lacks: named, not left random
    missing = r"do not fit ViTModel: 2 missing \(pooler.dense.bias, pooler.dense.weight\)"
    with pytest.raises(LayerscopeError, match=missing):
        load_model(str(sharded))


def test_without_transformers_a_folder_says_which_extra_to_install(vit_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(LayerscopeError, match=r"need transformers installed \(pip install 'layerscope\[hf\]'\)"):
        load_model(str(vit_folder[0]))


def test_preprocessing_without_a_processor_and_without_rescaling(tmp_path):
    from layerscope.models.sources.hf_folder import preprocess_from_folder

    assert preprocess_from_folder(tmp_path, {"image_size": 384}) == Preprocess(resize=439, crop=(384, 384))
    saved = {
        "do_resize": True,
        "size": {"shortest_edge": 256},
        "do_center_crop": True,
        "crop_size": 224,
        "do_rescale": False,
        "do_normalize": True,
        "image_mean": [127.5] * 3,
        "image_std": [127.5] * 3,
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(saved))
    spec = preprocess_from_folder(tmp_path, {})
    assert (spec.resize, spec.crop) == (256, (224, 224))
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5)  # pixels/255 here, raw pixels there
