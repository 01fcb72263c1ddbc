"""``layerscope [MODEL]`` parsing, the torch-free first frame, and the pure helpers behind the keys."""

from __future__ import annotations

import subprocess
import sys

import pytest

from layerscope.tui.launch import build_parser, make_app
from layerscope.tui.screens.image_path import complete_path
from layerscope.tui.screens.pickers import class_options
from layerscope.tui.session import SAMPLE_IMAGE
from layerscope.tui.widgets.gradcam import CamPanel
from layerscope.tui.widgets.search import find_matches, search_keys
from tui_helpers import notifications, screen_text, settle


def test_importing_the_app_does_not_import_torch():
    code = (
        "import sys\nfrom layerscope.tui.launch import make_app\nmake_app(['resnet18'])\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_grad_cam_texts_and_the_workers_jobs_import_no_textual():
    """What the Grad-CAM tab says, and what the workers run, stand without a screen."""
    code = (
        "import sys\nimport layerscope.tui.camtext, layerscope.tui.camlink, layerscope.tui.jobs\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_arguments_match_the_cli_and_default_to_the_bundled_photo():
    args = build_parser().parse_args(["resnet18", "--weights", "none", "--device", "meta", "--arg", "num_classes=10"])
    assert (args.model, args.weights, args.device, args.arg, args.image) == (
        "resnet18",
        "none",
        "meta",
        ["num_classes=10"],
        None,
    )
    assert make_app([]).options.image == SAMPLE_IMAGE


def test_bad_arguments_exit_with_status_2():
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--device"])
    assert exit_info.value.code == 2


async def test_no_model_opens_the_imagenet_default():
    app = make_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        assert "mobilenet_v2" in shown and "IMAGENET1K_V1" in shown and "3,504,872 params" in shown


async def test_meta_device_and_arch_arguments_reach_the_loader():
    app = make_app(["resnet18", "--device", "meta", "--arg", "num_classes=10"])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.main.session.loaded.device.type == "meta"
        assert app.main.session.tree.root.total_params == 11_181_642
        before = (app.main.session.method, app.main.session.image)
        await pilot.press("g")
        await settle(pilot)
        assert app.is_running
        assert notifications(app)[-1] == (
            "Grad-CAM failed: CAMs need real weights and arithmetic; load the model on cpu or cuda, not meta"
        )
        panel = app.query_one(CamPanel)
        assert panel.view is None and not panel.running  # refused, nothing half-drawn, g works again
        assert (app.main.session.method, app.main.session.image) == before
        assert app.main.session.node(app.main.session.target).name == "layer4.1"  # g picked the suggested layer first


def test_search_matches_names_and_classes(resnet18_tree):
    keys = search_keys(resnet18_tree)
    names = [resnet18_tree.nodes[i].name for i in find_matches(keys, "Layer4.1")]
    assert names[0] == "layer4.1" and all(n.startswith("layer4.1") for n in names)
    assert len(find_matches(keys, "basicblock")) == 8
    assert find_matches(keys, "  ") == []


def test_class_options_filter_by_index_or_name():
    cats = ["tench", "goldfish", "great white shark"]
    assert class_options(cats, "")[0] == (-1, "top prediction")
    assert class_options(cats, "gold") == [(1, "1 goldfish")]
    assert class_options(cats, "2") == [(2, "2 great white shark")]
    assert class_options([], "17") == [(17, "class index 17")]


def test_path_completion_offers_folders_and_images(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "cat.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert complete_path(f"{tmp_path}/ph") == f"{tmp_path}/photos/"
    assert complete_path(f"{tmp_path}/c") == f"{tmp_path}/cat.png"
    assert complete_path(f"{tmp_path}/n") is None


async def test_input_option_probes_a_language_model_with_token_ids():
    app = make_app(["sample_models:tied_lm", "--input", "12:long"])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.main.session.shapes["head"].describe() == "1×12×100"
        assert app.main.session.shapes[""].describe() == "1×12×100"


def test_header_shows_total_and_trainable_parameters(resnet18, resnet18_tree):
    from layerscope.models import load_model
    from layerscope.tree import build_tree
    from layerscope.tui.widgets.header import header_text

    assert "11,689,512 params (all trainable)" in header_text(resnet18, resnet18_tree).plain
    assert "⚠ random weights" in header_text(resnet18, resnet18_tree).plain
    partly = load_model("sample_models:with_state")
    assert "51 params (31 trainable, 20 frozen)" in header_text(partly, build_tree(partly.model)).plain


def test_without_a_terminal_the_app_says_so_and_exits_2(tmp_path):
    out = tmp_path / "out"
    with out.open("w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "layerscope", "resnet18"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "needs a terminal" in done.stderr
    from layerscope.cli.main import COMMANDS

    assert f"layerscope {'|'.join(COMMANDS)} MODEL" in done.stderr and "|report|" in done.stderr
    assert out.read_text() == ""  # no escape codes written into the file


def test_the_no_terminal_message_names_every_cli_command_from_its_table():
    """Generated from ``cli.main.COMMANDS``, so a command added later is named without an edit here."""
    from layerscope.cli.main import COMMANDS
    from layerscope.tui.launch import no_terminal

    assert "rank" in COMMANDS
    assert f"layerscope {'|'.join(COMMANDS)} MODEL" in no_terminal(COMMANDS)
    assert no_terminal(("tree", "later")).endswith("use layerscope tree|later MODEL (layerscope COMMAND -h)")
    shown = build_parser(COMMANDS).format_help()
    assert all(command in shown for command in COMMANDS)
