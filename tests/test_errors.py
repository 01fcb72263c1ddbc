"""Errors by kind (issue 27, point 5): an API caller catches what it means, every kind is still a
``LayerscopeError`` (a ``ValueError``), and the CLI still prints one line for any of them."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from evil_files import pickle_file
from layerscope.activations import ActivationsCancelled, collect_activations
from layerscope.cam import CamCancelled
from layerscope.cli.main import main
from layerscope.diff import DiffCancelled
from layerscope.errors import (
    BadArgumentError,
    BadFileError,
    LayerscopeError,
    NotFoundError,
    UnavailableError,
    UnsafeFileError,
)
from layerscope.models import load_model
from layerscope.models.build import parse_device
from layerscope.running.example_inputs import parse_inputs
from layerscope.running.jobcontrol import Cancelled, is_cancelled
from layerscope.tree import build_tree


@pytest.mark.parametrize("kind", [NotFoundError, UnsafeFileError, BadFileError, BadArgumentError, UnavailableError])
def test_every_kind_is_a_layerscope_error_and_a_value_error(kind):
    assert issubclass(kind, LayerscopeError) and issubclass(kind, ValueError)


def test_a_missing_file_and_an_unknown_model_are_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="no such"):
        load_model(str(tmp_path / "absent.pt"))
    with pytest.raises(NotFoundError, match="resnet18"):
        load_model("resnet81")


def test_an_unknown_layer_is_not_found():
    tree = build_tree(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(NotFoundError):
        tree.resolve("1")


def test_a_pickle_that_would_run_code_is_unsafe_and_a_corrupt_file_is_bad(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeFileError, match="--trust"):
        load_model(str(pickle_file(tmp_path / "evil.pt", marker)))
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(bytes(range(256)))
    with pytest.raises(BadFileError, match="junk.pt"):
        load_model(str(tmp_path / "junk.pt"))


def test_malformed_options_are_bad_arguments_and_a_missing_device_unavailable():
    with pytest.raises(BadArgumentError):
        parse_inputs(["3x-2"])
    with pytest.raises(BadArgumentError):
        parse_device("toaster")
    if not torch.cuda.is_available():
        with pytest.raises(UnavailableError, match="no CUDA GPU"):
            parse_device("cuda")


@pytest.mark.parametrize("argv", [["tree", "resnet81"], ["tree", "resnet18", "--input", "3x-2"]])
def test_the_cli_still_prints_one_line_for_each_kind(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1


def test_one_cancelled_for_every_engine_loop():
    assert CamCancelled is DiffCancelled is ActivationsCancelled is Cancelled
    assert not issubclass(Cancelled, LayerscopeError)  # a stop asked for is no mistake


def test_cancel_is_a_callable_or_an_event_everywhere():
    event = threading.Event()
    assert not is_cancelled(event) and not is_cancelled(lambda: False) and not is_cancelled(None)
    event.set()
    assert is_cancelled(event) and is_cancelled(lambda: True)
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(Cancelled):
        collect_activations(model, [torch.ones(1, 2)], cancel=event)


def test_activation_progress_says_done_and_total():
    model = nn.Sequential(nn.Linear(2, 2))
    seen: list[tuple[int, int]] = []
    collect_activations(model, [torch.ones(3, 2), torch.ones(2, 2)], progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 5), (5, 5)]
