"""Drive the app at a fixed size and save the docs' SVG screenshots into ``screenshots/`` (``docs/screenshots`` links there).

Run with ``make screenshots``. Uses the built-in default (mobilenet_v2 with its
ImageNet weights and the bundled chelsea.png), so every picture is real and the same
on every machine.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from layerscope.options import DEFAULT_MODEL, DEFAULT_WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
SIZE = (110, 34)
SMALL = (80, 24)  # the first-class small size


async def settle(pilot) -> None:
    await pilot.pause(0.05)
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def export() -> list[Path]:
    from layerscope.models import load_model
    from layerscope.tui.app import LayerscopeApp

    os.environ["COLORTERM"] = "truecolor"  # SVGs hold any colour: draw maps as a truecolor terminal sees them
    loaded = load_model(DEFAULT_MODEL, weights=DEFAULT_WEIGHTS)
    written: list[Path] = []
    OUT.mkdir(exist_ok=True)
    await _shots(
        LayerscopeApp(loaded, spec=DEFAULT_MODEL),
        SIZE,
        written,
        [
            ("tree-stats", ("slash", *"features.18", "enter", "enter")),
            ("state-dict", ("2",)),
            ("api", ("3",)),
            ("gradcam", ("g",)),
            ("activity", ("1", "A", "slash", *"conv.0.2", "enter")),  # features.1.conv.0.2: 5 of 32 channels dead
        ],
    )
    await _shots(
        LayerscopeApp(loaded, spec=DEFAULT_MODEL),
        SMALL,
        written,
        [
            ("gradcam-80x24", ("g",)),
            ("gradcam-curves-80x24", ("p",)),
            ("state-dict-80x24", ("2",)),
            ("api-80x24", ("3",)),
        ],
    )
    with tempfile.TemporaryDirectory() as folder:
        tuned = Path(folder) / "finetuned.pt"
        write_fine_tune(tuned)
        await _shots(
            LayerscopeApp(loaded, spec=DEFAULT_MODEL, diff=str(tuned)),
            SIZE,
            written,
            [("diff", ("slash", *"features", "enter", "enter"))],
        )
    return written


def write_fine_tune(path: Path) -> None:
    """``docs/guide/diff.md``'s fine-tune of the default model (``scripts/diff_example.py``): the app
    compares it with the cached weights file the model was read from (``--diff``)."""
    import torch
    from diff_example import fine_tune, photos

    from layerscope.models import load_model

    tuned = load_model(DEFAULT_MODEL, weights=DEFAULT_WEIGHTS)
    fine_tune(tuned.model, *photos(tuned))
    torch.save(tuned.model.state_dict(), path)


async def _shots(app, size: tuple[int, int], written: list[Path], shots: list[tuple[str, tuple[str, ...]]]) -> None:
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for name, keys in shots:
            await pilot.press(*keys)
            await settle(pilot)
            app.clear_notifications()
            await pilot.pause()
            written.append(Path(app.save_screenshot(filename=f"{name}.svg", path=str(OUT))))


def main() -> int:
    for path in asyncio.run(export()):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
