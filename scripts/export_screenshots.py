"""Drive the app at a fixed size and save the README's SVG screenshots into ``screenshots/``.

Run with ``make screenshots``. Uses the built-in default (mobilenet_v2 with its
ImageNet weights and the bundled chelsea.png), so every picture is real and the same
on every machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from layerscope.cli.common import DEFAULT_MODEL, DEFAULT_WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
SIZE = (110, 34)


async def settle(pilot) -> None:
    await pilot.pause(0.05)
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def export() -> list[Path]:
    from layerscope.loading import load_model
    from layerscope.tui.app import LayerscopeApp

    loaded = load_model(DEFAULT_MODEL, weights=DEFAULT_WEIGHTS)
    app = LayerscopeApp(loaded, spec=DEFAULT_MODEL)
    written = []
    OUT.mkdir(exist_ok=True)

    async with app.run_test(size=SIZE) as pilot:
        async def shot(name: str, *keys: str) -> None:
            if keys:
                await pilot.press(*keys)
            await settle(pilot)
            app.clear_notifications()
            await pilot.pause()
            written.append(Path(app.save_screenshot(filename=f"{name}.svg", path=str(OUT))))

        await settle(pilot)
        await shot("tree-stats", "slash", *"features.18", "enter", "enter")
        await shot("state-dict", "2")
        await shot("api", "3")
        await shot("gradcam", "g")
    return written


def main() -> int:
    for path in asyncio.run(export()):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
