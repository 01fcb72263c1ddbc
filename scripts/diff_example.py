"""The checkpoints behind ``docs/guide/diff.md``: ImageNet mobilenet_v2, a short real fine-tune of
it, and a LoRA adapter trained on it with ``peft``.

The fine-tune is the common recipe with its common slip: the backbone up to
``features[13]`` is frozen (``requires_grad=False``), the rest and the classifier train,
and the model is in ``train()`` mode, so the frozen layers' batch-norm running
statistics still move. The adapter puts rank-8 LoRA on the classifier and the last 1×1
convolution (and names a ``q_proj`` mobilenet does not have). Eight SGD steps each on
the two bundled photos, seeded.

    python scripts/diff_example.py OUT_DIR    # OUT_DIR/base.pt, finetuned.pt, lora/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from layerscope.io.imaging import load_image, preprocess
from layerscope.models import load_model

SAMPLES = Path(__file__).resolve().parent.parent / "app" / "layerscope" / "samples"
PHOTOS = {"chelsea.png": 281, "coffee.png": 967}  # tabby cat, espresso


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    torch.save(loaded.model.state_dict(), out / "base.pt")
    batch, labels = photos(loaded)
    fine_tune(loaded.model, batch, labels)
    torch.save(loaded.model.state_dict(), out / "finetuned.pt")
    lora(load_model("mobilenet_v2", weights="IMAGENET1K_V1").model, batch, labels).save_pretrained(out / "lora")
    return 0


def photos(loaded) -> tuple[torch.Tensor, torch.Tensor]:
    """The two bundled photos as one batch for ``loaded``, with their ImageNet classes."""
    batch = torch.cat([preprocess(load_image(SAMPLES / name), loaded.preprocess)[0] for name in PHOTOS])
    return batch, torch.tensor(list(PHOTOS.values()))


def fine_tune(model: torch.nn.Module, batch: torch.Tensor, labels: torch.Tensor) -> None:
    for index, layer in enumerate(model.features):
        layer.requires_grad_(index >= 14)
    model.train()  # the slip: frozen batch-norm layers keep updating their running statistics
    train(model, batch, labels)


def lora(model: torch.nn.Module, batch: torch.Tensor, labels: torch.Tensor):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=8, lora_alpha=16, target_modules=["classifier.1", "features.18.0", "q_proj"])
    adapted = get_peft_model(model, config)
    adapted.eval()  # only the LoRA factors learn; batch-norm statistics stay
    train(adapted, batch, labels)
    return adapted


def train(model: torch.nn.Module, batch: torch.Tensor, labels: torch.Tensor) -> None:
    torch.manual_seed(0)
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    for _ in range(8):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        optimiser.step()


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
