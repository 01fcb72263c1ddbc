"""Cost figures side by side with torchinfo's (and torchvision's published ``_ops``): tables, not tests.

Every model of the first table is built on the meta device, so nothing is allocated and no
weights are read; torchinfo runs its own forward on meta too. Prints one Markdown row per
model: MACs (layerscope, torchinfo's "Mult-Adds", torchvision's GMACs where published),
layerscope's memory estimates, and torchinfo's "Estimated Total Size".

    python benchmarks/bench_cost.py

With ``--torchinfo-tests DIR`` (a checkout of https://github.com/TylerYep/torchinfo) it
prints instead the second table: parameters and MACs of torchinfo's own test models with
the inputs its tests give them (``torchinfo_suite.py``), counted by torch, layerscope and
the installed torchinfo, on the CPU.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
import torchinfo
import torchvision.models as tvm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # big_models.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # torchinfo_suite.py

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
    return (
        f"| {name} | {stats['macs'] / 1e6:,.2f} M | {info.total_mult_adds / 1e6:,.2f} M | {_published(name)} | "
        f"{memory['inference_bytes'] / 1e6:,.0f} MB | {memory['training_bytes'] / 1e6:,.0f} MB | "
        f"{torchinfo_total / 1e6:,.0f} MB |"
    )


def _suite_row(case, fixtures) -> str:
    from layerscope.running.example_inputs import ExampleInputs

    model = case.build(fixtures).eval()
    args, kwargs = case.args(), case.kwargs()
    macs, uncounted = "—", ""
    if args or kwargs:
        try:
            _, table = probe_cost(model, ExampleInputs(args, kwargs))
            macs = f"{table.total.macs:,}"
            uncounted = ", ".join(f"{op} ×{n}" for op, n in table.uncounted_ops.items())
        except Exception as exc:  # a row that fails says so; the table goes on
            macs = f"fails: {str(exc).splitlines()[0][:60]}"
    torch_params = sum(p.numel() for p in model.parameters())  # after the pass: lazy modules are sized by it
    ours = build_tree(model).root.total_params
    theirs_params, theirs_macs = _torchinfo(model, args, kwargs)
    return (
        f"| {case.name} | {torch_params:,} | {ours:,} | {theirs_params} | {macs} | {theirs_macs} | "
        f"{uncounted or '—'} | {case.why} |"
    )


def _torchinfo(model, args: tuple, kwargs: dict) -> tuple[str, str]:
    """torchinfo's call as its tests make it: a list is the positional arguments, a dict the keywords."""
    try:
        if args:
            info = torchinfo.summary(model, input_data=list(args), verbose=0, **kwargs)
        elif kwargs:
            info = torchinfo.summary(model, input_data=kwargs, verbose=0)
        else:
            info = torchinfo.summary(model, verbose=0)
            return f"{info.total_params:,}", "—"
    except Exception as exc:
        return "fails", f"fails: {str(exc).splitlines()[0][:60]}"
    return f"{info.total_params:,}", f"{info.total_mult_adds:,}"


def torchinfo_suite(checkout: Path) -> None:
    sys.path.insert(0, str(checkout))
    import torchinfo_suite

    fixtures = [importlib.import_module(f"tests.fixtures.{name}") for name in ("models", "genotype", "tmva_net")]
    print(
        "| torchinfo test model | torch parameters | layerscope | torchinfo 1.8.0 | layerscope MACs "
        "| torchinfo Mult-Adds | layerscope uncounted_ops | why torchinfo differs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in torchinfo_suite.cases(*fixtures):
        print(_suite_row(case, fixtures[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--torchinfo-tests",
        type=Path,
        default=None,
        metavar="DIR",
        help="a checkout of torchinfo: compare on its own test models instead",
    )
    options = parser.parse_args()
    if options.torchinfo_tests is not None:
        torchinfo_suite(options.torchinfo_tests)
        return
    print(
        "| model (batch 1) | layerscope MACs | torchinfo Mult-Adds | torchvision `_ops` | layerscope inference "
        "| layerscope training (Adam, mixed) | torchinfo Estimated Total Size |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in CASES:
        print(_row(name))


if __name__ == "__main__":
    main()
