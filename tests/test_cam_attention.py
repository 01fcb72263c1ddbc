"""Transformer-native maps against an independent re-computation with explicit attention.

The oracle never goes through ``layerscope.attention``: it reads the probabilities from the
model's own eager attention path (timm with ``fused_attn`` off, Hugging Face's eager
attention with ``output_attentions``, a hand-written torchvision forward) and applies each
paper's formula in a plain loop. layerscope runs the same model with its fused attention on.
"""

from __future__ import annotations

import copy
import threading

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from layerscope.attention import AttentionMode, explicit_attention
from layerscope.cam import compute_cam, compute_sweep
from layerscope.cam.attention import RolloutOptions
from layerscope.errors import LayerscopeError

# --- the oracle: the papers' formulas in plain loops --------------------------------------------


def oracle_rollout(probs: list[torch.Tensor], prefix: int) -> torch.Tensor:
    """Abnar & Zuidema: Â = 0.5·mean_h(A) + 0.5·I, rows renormalised, multiplied from the first block."""
    product = None
    for a in probs:
        fused = 0.5 * a.mean(dim=1) + 0.5 * torch.eye(a.shape[-1])
        fused = fused / fused.sum(dim=-1, keepdim=True)
        product = fused if product is None else fused @ product
    return _row(product, prefix)


def oracle_gradrollout(probs: list[torch.Tensor], grads: list[torch.Tensor], prefix: int) -> torch.Tensor:
    """Chefer et al. 2021: R = I; R ← R + E_h[(∇A ⊙ A)⁺]·R."""
    product = torch.eye(probs[0].shape[-1])
    for a, g in zip(probs, grads):
        product = product + (g * a).clamp(min=0).mean(dim=1) @ product
    return _row(product, prefix)


def oracle_legrad(grads: list[torch.Tensor], prefix: int) -> torch.Tensor:
    """Bousselham et al. 2024: Σ_l mean_{h,q} ReLU(∂s_l/∂A_l), patch keys."""
    return sum(g.clamp(min=0).mean(dim=(1, 2)) for g in grads)[:, prefix:]


def oracle_all(probs: list[torch.Tensor], grads, legrad_grads: list[torch.Tensor], prefix: int) -> dict:
    """The three maps' patch rows from one eager pass: its probabilities, ∂y/∂A and ∂s_l/∂A_l."""
    detached = [p.detach() for p in probs]
    return {
        "rollout": oracle_rollout(detached, prefix),
        "gradrollout": oracle_gradrollout(detached, list(grads), prefix),
        "legrad": oracle_legrad(legrad_grads, prefix),
    }


def _row(product: torch.Tensor, prefix: int) -> torch.Tensor:
    return product[:, 0, prefix:] if prefix else product.mean(dim=1)


def _grid(row: torch.Tensor) -> torch.Tensor:
    side = int(row.shape[-1] ** 0.5)
    return row.reshape(side, side).clamp(min=0)


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = theirs.abs().max().clamp_min(1e-12)
    assert (ours - theirs).abs().max() / scale < 1e-4, (ours, theirs)


# --- timm: the eager path (fused_attn off on a copy) is the oracle -------------------------------


def _timm_vit(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    options = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5, **kwargs)
    return timm.models.vision_transformer.VisionTransformer(**options).eval()


def _timm_oracle(model: nn.Module, x: torch.Tensor, target: int, prefix: int) -> dict[str, torch.Tensor]:
    eager = copy.deepcopy(model)
    probs, outputs = [], []
    for block in eager.blocks:
        block.attn.fused_attn = False  # the test's own copy: the library's code never does this
        block.attn.attn_drop.register_forward_hook(lambda _m, _i, out: probs.append(out))
        block.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    x = x.clone().requires_grad_(True)
    logits = eager(x)
    grads = torch.autograd.grad(logits[:, target].sum(), probs, retain_graph=True)

    def block_score(tokens: torch.Tensor) -> torch.Tensor:
        pooled = eager.fc_norm(eager.norm(tokens.mean(dim=1)))
        scores = eager.head(pooled)
        return (scores + eager.head_dist(pooled)) / 2 if getattr(eager, "head_dist", None) is not None else scores

    legrad = [
        torch.autograd.grad(block_score(z)[:, target].sum(), a, retain_graph=True)[0] for z, a in zip(outputs, probs)
    ]
    return oracle_all(probs, grads, legrad, prefix)


TIMM_MODELS = {
    "vit": dict(),
    "registers": dict(reg_tokens=4),
    "no class token": dict(class_token=False, global_pool="avg"),
}


@pytest.mark.parametrize("kind", list(TIMM_MODELS))
def test_timm_maps_equal_the_papers_formulas_on_the_eager_path(kind):
    model = _timm_vit(**TIMM_MODELS[kind])
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    prefix = model.num_prefix_tokens
    oracle = _timm_oracle(model, x, target=2, prefix=prefix)
    for method in ("rollout", "gradrollout", "legrad"):
        result = compute_cam(model, x, "blocks.2", method, target=2)
        assert result.raw.shape == (4, 4) and result.heatmap.shape == (32, 32)
        assert f"{prefix} prefix token(s)" in result.layout
        _close(result.raw, _grid(oracle[method][0]))
        assert all(block.attn.fused_attn for block in model.blocks)  # the model as found


def test_a_distilled_deit_counts_two_prefix_tokens_and_both_heads():
    torch.manual_seed(0)
    model = timm.models.deit.VisionTransformerDistilled(
        img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5
    ).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    oracle = _timm_oracle(model, x, target=1, prefix=2)
    for method in ("rollout", "gradrollout", "legrad"):
        _close(compute_cam(model, x, "blocks.2", method, target=1).raw, _grid(oracle[method][0]))


def test_an_earlier_block_takes_the_blocks_up_to_it():
    model = _timm_vit()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    first_two = copy.deepcopy(model)
    first_two.blocks = first_two.blocks[:2]  # the oracle for rollout at block 1: a model that stops there
    oracle = _timm_oracle(first_two, x, target=0, prefix=1)
    _close(compute_cam(model, x, "blocks.1", "rollout").raw, _grid(oracle["rollout"][0]))
    _close(compute_cam(model, x, "blocks.1.attn", "rollout").raw, _grid(oracle["rollout"][0]))
    by_sweep = compute_sweep(model, x, ["blocks.0", "blocks.1", "blocks.2"], "legrad", target=0)
    _close(by_sweep[1].raw, compute_cam(model, x, "blocks.1", "legrad", target=0).raw)


def test_fused_or_eager_attention_give_the_same_maps():
    fused = _timm_vit()
    eager = copy.deepcopy(fused)
    for block in eager.blocks:
        block.attn.fused_attn = False
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    for method in ("rollout", "gradrollout", "legrad"):
        a = compute_cam(fused, x, "blocks.2", method, target=3).raw
        b = compute_cam(eager, x, "blocks.2", method, target=3).raw
        assert a.shape == (2, 4, 4)
        _close(a, b)


def test_rollout_options_follow_the_definition():
    model = _timm_vit()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    probs = _timm_probs(model, x)
    product = None
    for a in probs:
        fused = a.amax(dim=1)
        fused = 0.5 * fused + 0.5 * torch.eye(fused.shape[-1])
        fused = fused / fused.sum(dim=-1, keepdim=True)
        product = fused if product is None else fused @ product
    ours = compute_cam(model, x, "blocks.2", "rollout", rollout=RolloutOptions(head_fusion="max"))
    _close(ours.raw, _grid(product[0, 0, 1:]))
    with pytest.raises(LayerscopeError, match="unknown head fusion 'median'"):
        RolloutOptions(head_fusion="median")
    with pytest.raises(LayerscopeError, match=r"discard ratio must be in \[0, 1\)"):
        RolloutOptions(discard_ratio=1.5)


def test_discarding_keeps_the_largest_attentions_of_each_row():
    model = _timm_vit()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    probs = _timm_probs(model, x)
    product = None
    for a in probs:
        fused = a.mean(dim=1)[0]
        kept = torch.zeros_like(fused)
        for i, row in enumerate(fused):  # by hand: the 8 largest off-diagonal entries and the diagonal
            others = [(float(v), j) for j, v in enumerate(row) if j != i]
            for _, j in sorted(others, reverse=True)[:8]:
                kept[i, j] = row[j]
            kept[i, i] = row[i]
        mixed = 0.5 * kept + 0.5 * torch.eye(17)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        product = mixed if product is None else mixed @ product
    ours = compute_cam(model, x, "blocks.2", "rollout", rollout=RolloutOptions(discard_ratio=0.5))
    _close(ours.raw, _grid(product[0, 1:]))


def _timm_probs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    eager = copy.deepcopy(model)
    probs: list[torch.Tensor] = []
    for block in eager.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(lambda _m, _i, out: probs.append(out.detach()))
    with torch.no_grad():
        eager(x)
    return probs


# --- torchvision: a hand-written forward with explicit attention is the oracle -------------------


def _torchvision_vit() -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=5
    ).eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero: no gradient at all
    return model


def _torchvision_by_hand(model: VisionTransformer, x: torch.Tensor):
    """torchvision's ViT forward written out, attention explicit: logits, probabilities, block outputs."""
    n = x.shape[0]
    tokens = model.conv_proj(x).flatten(2).transpose(1, 2)
    tokens = torch.cat([model.class_token.expand(n, -1, -1), tokens], dim=1) + model.encoder.pos_embedding
    probs, outputs = [], []
    for block in model.encoder.layers:
        attn = block.self_attention
        h = block.ln_1(tokens)
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(n, -1, attn.num_heads, attn.head_dim).transpose(1, 2) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) / attn.head_dim**0.5, dim=-1)
        mixed = (a @ v).transpose(1, 2).reshape(n, -1, attn.embed_dim)
        tokens = tokens + attn.out_proj(mixed)
        tokens = tokens + block.mlp(block.ln_2(tokens))
        probs.append(a)
        outputs.append(tokens)
    logits = model.heads(model.encoder.ln(tokens)[:, 0])
    return logits, probs, outputs


def _torchvision_oracle(model: VisionTransformer, x: torch.Tensor, target: int):
    """The hand-written forward's logits, and the three formulas on its probabilities."""
    logits, probs, outputs = _torchvision_by_hand(model, x)
    grads = torch.autograd.grad(logits[:, target].sum(), probs, retain_graph=True)
    score = lambda z: model.heads(model.encoder.ln(z.mean(dim=1)))[:, target].sum()  # noqa: E731
    legrad = [torch.autograd.grad(score(z), a, retain_graph=True)[0] for z, a in zip(outputs, probs)]
    return logits, oracle_all(probs, grads, legrad, 1)


def test_torchvision_maps_equal_the_formulas_on_a_hand_written_forward():
    model = _torchvision_vit()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(7)).requires_grad_(True)
    logits, expected = _torchvision_oracle(model, x, 4)
    _close(logits.detach(), model(x.detach()))  # the hand-written forward is torchvision's
    for method, oracle in expected.items():
        ours = compute_cam(model, x.detach(), "encoder.layers.encoder_layer_2", method, target=4)
        _close(ours.raw, _grid(oracle[0]))
    assert torch.backends.mha.get_fastpath_enabled()


@pytest.mark.slow
def test_vit_b_16_legrad_equals_torchcam():
    """torchcam's LeGrad (the dev extra's reference library) on torchvision's vit_b_16."""
    from torchcam.methods import LeGrad
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    model = vit_b_16().eval()
    nn.init.normal_(model.heads.head.weight, std=0.02)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    blocks = list(model.encoder.layers)
    with LeGrad(model, blocks) as extractor:
        scores = model(x)
        theirs = extractor(3, scores)[0][0]
    for p in model.parameters():
        p.requires_grad_(True)
    ours = compute_cam(model, x, "encoder.layers.encoder_layer_11", "legrad", target=3).raw
    minmax = lambda t: (t - t.min()) / (t.max() - t.min())  # noqa: E731 - torchcam returns its maps min-max scaled
    _close(minmax(ours), minmax(theirs))


# --- Hugging Face: eager attention's own output_attentions is the oracle ------------------------


def _hf_oracle(model: nn.Module, x: torch.Tensor, target: int) -> dict[str, torch.Tensor]:
    """The three formulas from an eager twin of ``model``: its own ``output_attentions`` and
    ``output_hidden_states``, the probabilities and tokens inside the autograd graph."""
    eager = type(model)._from_config(model.config, attn_implementation="eager").eval()
    eager.load_state_dict(model.state_dict())
    x = x.detach().clone().requires_grad_(True)
    out = eager(pixel_values=x, output_attentions=True, output_hidden_states=True)
    probs, hidden = list(out.attentions), out.hidden_states[1:]
    grads = torch.autograd.grad(out.logits[:, target].sum(), probs, retain_graph=True)
    score = lambda z: eager.classifier(eager.vit.layernorm(z.mean(dim=1)))[:, target].sum()  # noqa: E731
    legrad = [torch.autograd.grad(score(z), a, retain_graph=True)[0] for z, a in zip(hidden, probs)]
    return oracle_all(probs, grads, legrad, 1)


def test_a_hugging_face_vit_on_sdpa_equals_its_eager_attentions():
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=5,
    )
    torch.manual_seed(0)
    sdpa = ViTForImageClassification._from_config(config, attn_implementation="sdpa").eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    for method, oracle in _hf_oracle(sdpa, x, 1).items():
        ours = compute_cam(sdpa, x, "vit.encoder.layer.2", method, target=1)
        _close(ours.raw, _grid(oracle[0]))


def test_a_hugging_face_vit_folder_through_the_photo_pipeline(tmp_path):
    """Saved with ``save_pretrained``, opened by layerscope's own loader, explained on a photo."""
    import transformers

    from layerscope.cam import PhotoExplainer
    from layerscope.io.imaging import SAMPLES
    from layerscope.models import load_model

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=224,
        patch_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
    )
    transformers.ViTForImageClassification(config).eval().save_pretrained(tmp_path)
    transformers.ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(tmp_path)
    explainer = PhotoExplainer(load_model(str(tmp_path)), SAMPLES / "chelsea.png")
    layer = explainer.suggested_layer()
    oracle = _hf_oracle(explainer.model, explainer.input, 2)
    for method in ("rollout", "gradrollout", "legrad"):
        [result] = explainer.maps([layer], method, target=2)
        assert result.raw.shape == (7, 7) and result.on_photo.shape == (300, 451)
        _close(result.raw, _grid(oracle[method][0]))


@pytest.mark.slow
def test_vit_b_16_maps_equal_the_formulas_on_a_hand_written_forward():
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    model = vit_b_16().eval()
    nn.init.normal_(model.heads.head.weight, std=0.02)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(10)).requires_grad_(True)
    _, expected = _torchvision_oracle(model, x, 7)
    for method, oracle in expected.items():
        ours = compute_cam(model, x.detach(), "encoder.layers.encoder_layer_11", method, target=7)
        assert ours.raw.shape == (14, 14)
        _close(ours.raw, _grid(oracle[0]))


# --- where the methods do not apply: one line each ---------------------------------------------


def test_a_convnet_or_windowed_attention_gets_one_line(resnet18):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(LayerscopeError, match="no attention ran in this model's forward pass; these methods apply"):
        compute_cam(resnet18.model, x, "layer4", "rollout")
    swin = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        num_classes=5,
        img_size=56,
        window_size=7,
        depths=(1, 1),
        num_heads=(1, 2),
        embed_dim=16,
    ).eval()
    with pytest.raises(LayerscopeError, match=r"windowed.*attention\); these methods apply to ViT"):
        compute_cam(swin, torch.randn(1, 3, 56, 56), "layers.1", "gradrollout")
    assert compute_cam(swin, torch.randn(1, 3, 56, 56), "layers.1", "gradcam").raw.dim() == 2  # CAMs still work
    cait = timm.models.cait.Cait(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=5).eval()
    for method in ("rollout", "legrad"):  # its class-attention blocks attend from 1 token to 17
        with pytest.raises(LayerscopeError, match=r"blocks_token_only.0 attends from 1 to 17 tokens \(class attention"):
            compute_cam(cait, torch.randn(1, 3, 32, 32), "blocks.1", method, target=0)


def test_a_layer_outside_the_blocks_gets_one_line():
    model = _timm_vit()
    with pytest.raises(LayerscopeError, match=r"layer 'patch_embed' runs no attention; name a transformer block"):
        compute_cam(model, torch.randn(1, 3, 32, 32), "patch_embed", "rollout")


def test_legrad_names_what_it_lacks_and_rollout_still_works():
    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            inner = _timm_vit()
            self.embed, self.blocks = inner.patch_embed, inner.blocks
            self.cls = inner.cls_token
            self.pos = inner.pos_embed
            self.out = nn.Linear(32, 5)

        def forward(self, x):
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(x)], dim=1) + self.pos
            return self.out(self.blocks(t)[:, 0])

    model = Bare().eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(LayerscopeError, match="legrad needs the model's final norm and classification head"):
        compute_cam(model, x, "blocks.2", "legrad", target=0)
    assert compute_cam(model, x, "blocks.2", "gradrollout", target=0, reshape=None).raw.shape == (4, 4)


# --- the mechanism: scoped to the calling thread, torch left as found ---------------------------


def test_another_thread_keeps_torchs_fast_path_while_attention_is_recorded():
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval()
    seen: dict[str, bool] = {}
    started, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        class Ops(TorchDispatchMode):
            names: set[str] = set()

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                Ops.names.add(func._overloadpacket.__name__)
                return func(*args, **(kwargs or {}))

        started.wait()
        with Ops(), torch.no_grad():
            layer(torch.randn(1, 10, 32))
        seen["fast"] = "_transformer_encoder_layer_fwd" in Ops.names
        release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    calls = []
    with AttentionMode(lambda call: calls.append(call) or explicit_attention(call)[0]), torch.no_grad():
        started.set()
        release.wait(timeout=60)
        layer(torch.randn(1, 10, 32))
    thread.join()
    assert seen == {"fast": True}  # the other thread took torch's fused kernel throughout
    assert len(calls) == 1  # this thread's layer went through the mode
    assert torch.nn.functional.scaled_dot_product_attention is torch._C._nn.scaled_dot_product_attention
