"""The transformers guide's figure: four held-out images of the synthetic ground-truth task
(tests/synthetic_vit.py: the class is the colour of one planted object) with Grad-CAM and the
three transformer-native maps of the trained timm ViT, for the true class.

    python scripts/transformer_maps_figure.py [docs/screenshots/transformer-maps.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from layerscope.cam import compute_cam  # noqa: E402
from layerscope.io import imaging  # noqa: E402
from synthetic_vit import held_out, trained_vit  # noqa: E402

SIDE = 128
LAYERS = {"gradcam": "blocks.3.norm1", "rollout": "blocks.3", "gradrollout": "blocks.3", "legrad": "blocks.3"}


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots" / "transformer-maps.png"
    model = trained_vit("timm").model
    data = held_out(4)
    tiles = []
    for i in range(len(data.labels)):
        x = data.images[i : i + 1]
        photo = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).resize(
            (SIDE, SIDE), Image.Resampling.NEAREST
        )
        tiles.append(("image", photo))
        for method, layer in LAYERS.items():
            result = compute_cam(model, x, layer, method, target=int(data.labels[i]))
            heat = F.interpolate(result.heatmap[None, None], size=(SIDE, SIDE), mode="bilinear")[0, 0]
            tiles.append((method, imaging.overlay(photo, heat, "jet", 0.5, None)))
    print(f"wrote {imaging.save_png(imaging.labelled_grid(tiles), out)}")


if __name__ == "__main__":
    main()
