"""Cost figures side by side with torchinfo's (and torchvision's published ``_ops``): a table, not a test.

Every model is built on the meta device, so nothing is allocated and no weights are read;
torchinfo runs its own forward on meta too. Prints one Markdown row per model: MACs
(layerscope, torchinfo's "Mult-Adds", torchvision's GMACs where published), layerscope's
memory estimates, and torchinfo's "Estimated Total Size".

    python benchmarks/bench_cost.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchinfo
import torchvision.models as tvm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # big_models.py

from big_models import LlamaModel  # noqa: E402
from layerscope.cost import cost_stats, probe_cost  # noqa: E402
from layerscope.tree import build_tree  # noqa: E402

LLAMA_1B = dict(layers=16, dim=2048, kv_dim=512, hidden=8192, vocab=128_256)  # Llama-3.2-1B's shapes
CASES = {
    "resnet50": (lambda: tvm.resnet50(), (3, 224, 224), torch.float32),
    "vit_b_16": (lambda: tvm.vit_b_16(), (3, 224, 224), torch.float32),
    "Llama-shaped 1.5B, 512 tokens": (lambda: LlamaModel(**LLAMA_1B), (512,), torch.long),
}


def _published(name: str) -> str:
    try:
        return f"{tvm.get_model_weights(name).DEFAULT.meta['_ops'] * 1e3:,.0f} M"
    except ValueError:
        return "—"


def _row(name: str) -> str:
    build, shape, dtype = CASES[name]
    with torch.device("meta"):
        model = build().eval()
    _, table = probe_cost(model, shape, dtype)
    stats = cost_stats(build_tree(model).root, table)
    x = torch.zeros((1, *shape), dtype=dtype, device="meta")
    info = torchinfo.summary(model, input_data=x, device="meta", verbose=0)
    torchinfo_total = info.total_input + info.total_output_bytes + info.total_param_bytes
    memory = stats["memory"]
    return (f"| {name} | {stats['macs'] / 1e6:,.2f} M | {info.total_mult_adds / 1e6:,.2f} M | {_published(name)} | "
            f"{memory['inference_bytes'] / 1e6:,.0f} MB | {memory['training_bytes'] / 1e6:,.0f} MB | "
            f"{torchinfo_total / 1e6:,.0f} MB |")


def main() -> None:
    print("| model (batch 1) | layerscope MACs | torchinfo Mult-Adds | torchvision `_ops` | layerscope inference "
          "| layerscope training (Adam, mixed) | torchinfo Estimated Total Size |")
    print("|---|---|---|---|---|---|---|")
    for name in CASES:
        print(_row(name))


if __name__ == "__main__":
    main()
