"""torchinfo's own test configurations, fed to torchinfo and to layerscope alike.

Each case is a model from torchinfo 1.8.0's ``tests/`` (``fixtures/models.py``,
``genotype.py``, ``tmva_net.py`` and the torchvision models of ``torchinfo_xl_test.py``)
with the inputs its test gives ``summary``: positional arguments, keyword arguments, or
both. ``bench_cost.py --torchinfo-tests DIR`` imports them from a checkout of torchinfo
(``git clone -b v1.8.0 https://github.com/TylerYep/torchinfo``), so nothing of theirs is
copied here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Case:
    """One ``summary`` call of torchinfo's tests: the model and what its forward was given."""

    name: str
    build: Callable[[Any], nn.Module]  # given torchinfo's fixtures module
    args: Callable[[], tuple] = tuple  # positional arguments (no input: parameters only)
    kwargs: Callable[[], dict] = dict

    @property
    def why(self) -> str:
        """Why torchinfo's figure differs from torch's or layerscope's (read off the models)."""
        return next((why for names, why in WHY if self.name in names), "")


BIAS = "torchinfo adds biases and norm weights as if they were multiply-adds"
WHY = [
    (
        (
            "SingleInputNet",
            "Linear(2, 5)",
            "MultipleInputNetDifferentDtypes (list)",
            "MultipleInputNetDifferentDtypes (dict)",
            "LinearModel",
            "RecursiveNet",
            "SiameseNets",
            "ContainerModule",
            "ModuleDictModel (conv, lrelu)",
            "EdgecaseInputOutputModel",
            "ReturnDict",
            "AutoEncoder",
            "ReuseLinear",
            "ReuseLinearExtended",
            "ReuseReLU",
            "MixedTrainable",
            "RegisterParameter",
            "InsideModel",
            "RecursiveWithMissingLayers",
            "CNNModuleList(ConvLayerA)",
            "CNNModuleList(ConvLayerB)",
            "ScalarTensorInputNet",
            "GenotypeNetwork",
            "resnet18 at 64",
            "resnet50 batch 2",
            "resnet152",
            "googlenet at 112",
            "fasterrcnn_resnet50_fpn at 112",
        ),
        BIAS,
    ),
    (("ModuleDictModel (pool, prelu)",), "torchinfo counts PReLU's one weight as a multiply-add"),
    (
        ("pruned SingleInputNet",),
        "torchinfo counts only unpruned weights; the forward still multiplies the "
        "masked (dense) weight, and parameters() holds weight_orig",
    ),
    (
        ("CustomParameter(8, 4)", "PrunedLayerNameModel"),
        "the forward returns a parameter and computes nothing; torchinfo counts its size",
    ),
    (
        ("FakePrunedLayerModel",),
        "torchinfo takes weight_mask for a pruning mask and drops 32 parameters; the forward computes nothing",
    ),
    (
        ("ParameterFCNet(128, 64, 32)", "ParameterFCNet(128, 64)"),
        "torch.mm on a parameter in forward: no module, so torchinfo misses it",
    ),
    (("HighlyNestedDictModel",), "an unbatched 1-D input: torchinfo multiplies by its first dimension"),
    (("LSTMNet",), "torchinfo multiplies the LSTM's parameters, biases included, by the sequence length"),
    (("PackPaddedLSTM",), "903 real time steps of a packed batch; torchinfo counts every padded step"),
    (
        ("SimpleRNN", "SimpleRNN (outside loop)"),
        "LSTMCell: 4·H·(I + H) per step and row; torchinfo counts its 56 "
        "parameters, biases included, twice per step and row",
    ),
    (
        ("SharedModuleInNestedList",),
        "torchinfo counts two Linear layers of the blocks that share a ReLU twice, and adds biases as multiply-adds",
    ),
    (("TiedWeightsModel",), "torchinfo counts the tied weight twice, and the head once per sequence, not per token"),
    (
        ("TMVANet",),
        "torchinfo counts a transposed convolution's weights × output pixels (kernel-area times too "
        "many) and adds biases and norms",
    ),
    (
        ("T5 (flan-t5-small's shapes, random)",),
        "torchinfo counts the shared embedding three times, Linear layers once per sequence, and no attention products",
    ),
    (
        ("LinearModel, scripted", "PartialJITModel, scripted"),
        "TorchScript runs no hooks: torchinfo sees no layer; torch's counter sees every op",
    ),
    (
        (
            "DictWithNonTensorValues (str)",
            "DictWithNonTensorValues (None)",
            "TensorKernelSizeConv",
            "CategoricalOutputModel",
            "NormalOutputModel",
        ),
        "torchinfo 1.8.0 fails (fixed in its later tests)",
    ),
]


def _t(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    torch.manual_seed(0)
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)


def _lengths() -> torch.Tensor:
    """test_pack_padded's 128 sequence lengths."""
    counts = {13: 1, 12: 1, 11: 8, 10: 14, 9: 14, 8: 9, 7: 19, 6: 25, 5: 21, 4: 16}
    return torch.tensor([n for n, c in counts.items() for _ in range(c)])


def cases(models: Any, genotype: Any, tmva: Any) -> list[Case]:
    import torchvision

    m = models
    return [
        Case("SingleInputNet", lambda _: m.SingleInputNet(), lambda: (_t(16, 1, 28, 28),)),
        Case("Linear(2, 5)", lambda _: nn.Linear(2, 5), lambda: (_t(1, 2),)),
        Case("UninitializedParameterModel", lambda _: m.UninitializedParameterModel(), lambda: (_t(2, 2),)),
        Case(
            "MultipleInputNetDifferentDtypes (list)",
            lambda _: m.MultipleInputNetDifferentDtypes(),
            lambda: (_t(1, 300), _t(1, 300, dtype=torch.long)),
        ),
        Case(
            "MultipleInputNetDifferentDtypes (dict)",
            lambda _: m.MultipleInputNetDifferentDtypes(),
            tuple,
            lambda: {"x1": _t(1, 300), "x2": _t(1, 300, dtype=torch.long)},
        ),
        Case("pruned SingleInputNet", lambda _: _pruned(m.SingleInputNet()), lambda: (_t(16, 1, 28, 28),)),
        Case("LinearModel", lambda _: m.LinearModel(), lambda: (_t(64, 128),)),
        Case("LinearModel, scripted", lambda _: torch.jit.script(m.LinearModel()), lambda: (_t(64, 128),)),
        Case("PartialJITModel, scripted", lambda _: torch.jit.script(m.PartialJITModel()), lambda: (_t(2, 1, 28, 28),)),
        Case("CustomParameter(8, 4)", lambda _: m.CustomParameter(8, 4), lambda: (_t(1),)),
        Case("ParameterListModel", lambda _: m.ParameterListModel(), lambda: (_t(100, 100),)),
        Case(
            "DictParameter",
            lambda _: m.DictParameter(),
            lambda: ({256: _t(10, 1), 512: [_t(10, 1)]},),
            lambda: {"scale_factor": 5},
        ),
        Case(
            "DictWithNonTensorValues (str)",
            lambda _: m.DictWithNonTensorValues(),
            lambda: ({"tensor": _t(1, 3, 32, 32), "label": "cat"},),
        ),
        Case(
            "DictWithNonTensorValues (None)",
            lambda _: m.DictWithNonTensorValues(),
            lambda: ({"tensor": _t(1, 3, 32, 32), "mask": None},),
        ),
        Case("LSTMNet", lambda _: m.LSTMNet(), lambda: (_t(1, 100, dtype=torch.long),)),
        Case("RecursiveNet", lambda _: m.RecursiveNet(), lambda: (_t(1, 64, 28, 28),)),
        Case("SiameseNets", lambda _: m.SiameseNets(), lambda: (_t(1, 1, 88, 88), _t(1, 1, 88, 88))),
        Case("ContainerModule", lambda _: m.ContainerModule(), lambda: (_t(1, 5),)),
        Case("EmptyModule", lambda _: m.EmptyModule()),
        Case(
            "PackPaddedLSTM",
            lambda _: m.PackPaddedLSTM(),
            lambda: (torch.ones(20, 128, dtype=torch.long),),
            lambda: {"lengths": _lengths()},
        ),
        Case(
            "ModuleDictModel (conv, lrelu)",
            lambda _: m.ModuleDictModel(),
            lambda: (_t(1, 10, 3, 3),),
            lambda: {"layer_type": "conv", "activation_type": "lrelu"},
        ),
        Case(
            "ModuleDictModel (pool, prelu)",
            lambda _: m.ModuleDictModel(),
            lambda: (_t(1, 10, 3, 3),),
            lambda: {"layer_type": "pool", "activation_type": "prelu"},
        ),
        Case("HighlyNestedDictModel", lambda _: m.HighlyNestedDictModel(), lambda: (torch.ones(10),)),
        Case("EdgecaseInputOutputModel", lambda _: m.EdgecaseInputOutputModel(), lambda: ({},)),
        Case(
            "NamedTuple",
            lambda _: m.NamedTuple(),
            lambda: (_t(2, 1, 28, 28), _t(2, 1, 28, 28)),
            lambda: {"z": m.NamedTuple.Point((2, 1, 28, 28), (2, 1, 28, 28))},
        ),
        Case("ReturnDict", lambda _: m.ReturnDict(), lambda: (_t(1, 1, 28, 28), [12])),
        Case("AutoEncoder", lambda _: m.AutoEncoder(), lambda: (_t(1, 3, 64, 64),)),
        Case("ReuseLinear", lambda _: m.ReuseLinear(), lambda: (_t(2, 10),)),
        Case("ReuseLinearExtended", lambda _: m.ReuseLinearExtended(), lambda: (_t(2, 10),)),
        Case("ReuseReLU", lambda _: m.ReuseReLU(), lambda: (_t(4, 4, 64, 64),)),
        Case("PrunedLayerNameModel", lambda _: m.PrunedLayerNameModel(8, 4), lambda: (_t(1),)),
        Case("FakePrunedLayerModel", lambda _: m.FakePrunedLayerModel(8, 4), lambda: (_t(1),)),
        Case("MixedTrainable", lambda _: m.MixedTrainable(), lambda: (_t(1, 1, 1),)),
        Case("MixedTrainableParameters", lambda _: m.MixedTrainableParameters()),
        Case("RegisterParameter", lambda _: m.RegisterParameter(nn.Linear(2, 2), nn.Linear(2, 2)), lambda: (_t(2, 2),)),
        Case("ParameterFCNet(128, 64, 32)", lambda _: m.ParameterFCNet(128, 64, 32), lambda: (_t(3, 128),)),
        Case("ParameterFCNet(128, 64)", lambda _: m.ParameterFCNet(128, 64), lambda: (_t(3, 128),)),
        Case("InsideModel", lambda _: m.InsideModel(), lambda: (_t(100, 2),)),
        Case("RecursiveWithMissingLayers", lambda _: m.RecursiveWithMissingLayers(), lambda: (_t(2, 3, 128, 128),)),
        Case("CNNModuleList(ConvLayerA)", lambda _: m.CNNModuleList(m.ConvLayerA), lambda: (_t(1, 1, 10),)),
        Case("CNNModuleList(ConvLayerB)", lambda _: m.CNNModuleList(m.ConvLayerB), lambda: (_t(1, 1, 10),)),
        Case("SharedModuleInNestedList", lambda _: m.SharedModuleInNestedList(), lambda: (_t(1, 4),)),
        Case("TiedWeightsModel", lambda _: m.TiedWeightsModel(), lambda: (_t(2, 8, dtype=torch.long),)),
        Case("SimpleRNN", lambda _: m.SimpleRNN(), lambda: (_t(2, 3),)),
        Case("SimpleRNN (outside loop)", lambda _: m.SimpleRNN(repeat_outside_loop=True), lambda: (_t(2, 3),)),
        Case("TensorKernelSizeConv", lambda _: m.TensorKernelSizeConv(), lambda: (_t(1, 1, 16),)),
        Case("ScalarTensorInputNet", lambda _: m.ScalarTensorInputNet(), lambda: (_t(1, 10), torch.tensor(0.5))),
        Case("CategoricalOutputModel", lambda _: m.CategoricalOutputModel(10, 5), lambda: (_t(1, 10),)),
        Case("NormalOutputModel", lambda _: m.NormalOutputModel(10, 5), lambda: (_t(1, 10),)),
        Case("GenotypeNetwork", lambda _: genotype.GenotypeNetwork(), lambda: (_t(2, 3, 32, 32),)),
        Case(
            "TMVANet",
            lambda _: tmva.TMVANet(n_classes=4, n_frames=5),
            lambda: (_t(1, 1, 5, 256, 64), _t(1, 1, 5, 256, 256), _t(1, 1, 5, 256, 64)),
        ),
        Case("resnet18 at 64", lambda _: torchvision.models.resnet18(), lambda: (_t(1, 3, 64, 64),)),
        Case("resnet50 batch 2", lambda _: torchvision.models.resnet50(), lambda: (_t(2, 3, 224, 224),)),
        Case("resnet152", lambda _: torchvision.models.resnet152(), lambda: (_t(1, 3, 224, 224),)),
        Case(
            "googlenet at 112",
            lambda _: torchvision.models.googlenet(init_weights=False),
            lambda: (_t(1, 3, 112, 112),),
        ),
        Case(
            "fasterrcnn_resnet50_fpn at 112",
            lambda _: torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None),
            lambda: (_t(1, 3, 112, 112),),
        ),
        Case(
            "T5 (flan-t5-small's shapes, random)",
            lambda _: _flan_t5_small_shaped(),
            tuple,
            lambda: {
                "input_ids": _t(3, 100, dtype=torch.long),
                "attention_mask": _t(3, 100, dtype=torch.long),
                "labels": _t(3, 100, dtype=torch.long),
            },
        ),
    ]


def _pruned(model: nn.Module) -> nn.Module:
    from torch.nn.utils import prune

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(module, "weight", 0.5)
    return model


def _flan_t5_small_shaped() -> nn.Module:
    """google/flan-t5-small's configuration (the test downloads it; here it is built untrained)."""
    import transformers

    config = transformers.T5Config(
        vocab_size=32128,
        d_model=512,
        d_kv=64,
        d_ff=1024,
        num_layers=8,
        num_decoder_layers=8,
        num_heads=6,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
    )
    return transformers.T5ForConditionalGeneration(config)
