"""The checkpoints behind ``docs/diff.md``: ImageNet mobilenet_v2 and a short real fine-tune of it.

The fine-tune is the common recipe with its common slip: the backbone up to
``features[13]`` is frozen (``requires_grad=False``), the rest and the classifier train,
and the model is in ``train()`` mode, so the frozen layers' batch-norm running
statistics still move. Eight SGD steps on the two bundled photos, seeded.

    python scripts/diff_example.py OUT_DIR    # writes OUT_DIR/base.pt and OUT_DIR/finetuned.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from layerscope.imaging import load_image, preprocess
from layerscope.loading import load_model

SAMPLES = Path(__file__).resolve().parent.parent / "app" / "layerscope" / "samples"
PHOTOS = {"chelsea.png": 281, "coffee.png": 967}  # tabby cat, espresso


def main(out: Path) -> int:
    torch.manual_seed(0)
    loaded = load_model("mobilenet_v2", weights="IMAGENET1K_V1")
    model = loaded.model
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "base.pt")
    batch = torch.cat([preprocess(load_image(SAMPLES / name), loaded.preprocess)[0] for name in PHOTOS])
    labels = torch.tensor(list(PHOTOS.values()))
    for index, layer in enumerate(model.features):
        layer.requires_grad_(index >= 14)
    model.train()  # the slip: frozen batch-norm layers keep updating their running statistics
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    for _ in range(8):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        optimiser.step()
    torch.save(model.state_dict(), out / "finetuned.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
