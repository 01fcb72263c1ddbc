"""Shared fixtures: models are built once per session because building is the slow part.

Torch runs one thread per test process. Its intra-op threads spin while they wait for
each other, so on a busy machine every small op waits for a thread the OS has put to
sleep: with two threads and one other CPU-bound process, 100 Grad-CAMs on a small
resnet18 input took 132 s instead of 6 s (one thread). Set ``LAYERSCOPE_TEST_THREADS``
to try more.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

THREADS = int(os.environ.get("LAYERSCOPE_TEST_THREADS", "1"))
os.environ["OMP_NUM_THREADS"] = str(THREADS)  # before torch loads; subprocesses inherit it
os.environ["MKL_NUM_THREADS"] = str(THREADS)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)

from layerscope.models import load_model  # noqa: E402
from layerscope.tree import ModuleTree, build_tree  # noqa: E402

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # makes ``sample_models:...`` factory specs importable

SAMPLES = TESTS.parent / "app" / "layerscope" / "samples"


def pytest_addoption(parser):
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the CLI's current output (test_cli_golden.py)",
    )


def pytest_collection_modifyitems(items):
    """The costliest files run first, each file kept whole (module fixtures stay built once):
    the app's Pilot files, then files with tests marked slow, then the rest, each group in
    its usual order. Alphabetically the app's files came last, and the two workers ended
    with one of them alone on a 25-second app session while the other sat idle."""

    def weight(item) -> int:
        return 2 if item.path.name.startswith("test_tui_") else int(item.get_closest_marker("slow") is not None)

    heaviest: dict[Path, int] = {}
    for item in items:
        heaviest[item.path] = max(heaviest.get(item.path, 0), weight(item))
    files = list(heaviest)
    items.sort(key=lambda item: (-heaviest[item.path], files.index(item.path)))


@pytest.fixture(autouse=True)
def truecolor_terminal(monkeypatch):
    """The app draws maps for the terminal's colour depth (layerscope.presentation.render.color_depth); tests
    and snapshots see the same truecolor terminal whatever TERM the runner has."""
    monkeypatch.setenv("COLORTERM", "truecolor")


@pytest.fixture(scope="session")
def resnet18():
    torch.manual_seed(0)
    return load_model("resnet18")


@pytest.fixture(scope="module")
def resnet18_loaded():
    """A fresh resnet18 per test module, for apps: what one module's app does to it stays there."""
    torch.manual_seed(0)
    return load_model("resnet18")


@pytest.fixture(scope="session")
def resnet18_tree(resnet18) -> ModuleTree:
    return build_tree(resnet18.model)


@pytest.fixture(autouse=True)
def recorded_notifications(monkeypatch):
    """Record what apps pass to ``App.notify`` (public API) for ``tui_helpers.notifications``.

    Only where the test module already imported textual: engine tests stay textual-free."""
    if "textual.app" not in sys.modules:
        return
    from textual.app import App

    from tui_helpers import NOTIFIED

    real = App.notify

    def notify(self, message, *, title="", **options):
        self.__dict__.setdefault(NOTIFIED, []).append(f"{title}: {message}")
        return real(self, message, title=title, **options)

    monkeypatch.setattr(App, "notify", notify)


@pytest.fixture(scope="session")
def report_folder(tmp_path_factory) -> Path:
    """The folder of ``report_helpers.make_folder``: photos, crops, flips and unusable files."""
    from report_helpers import make_folder

    return make_folder(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="session")
def finished_report(report_folder, tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted ``layerscope report`` (``report_helpers.ARGV``) of that folder: OUTDIR, summary."""
    from layerscope.folder_report import FolderReport
    from report_helpers import request

    out = tmp_path_factory.mktemp("finished") / "out"
    return out, FolderReport(request(report_folder, out)).run()


@pytest.fixture(scope="session")
def counter_folder(tmp_path_factory) -> Path:
    """A tiny Llama trained to count in steps, saved with its tokenizer (tests/lm_models.py)."""
    from lm_models import save_counter

    return save_counter(tmp_path_factory.mktemp("lm") / "counter")
