"""The app's two speed promises, measured with Pilot in one run.

1. Start-up: a fresh process (so importing torch counts) opens ``layerscope resnet50``
   and waits until resnet50's module tree is on screen. Promise: under 4 s on 2 cores.
2. Cursor: on a model of 100,004 modules (and resnet18 for comparison), the time from
   sending an arrow key to the frame that shows the cursor on its new line. Promise:
   under 50 ms. The tabs follow once the cursor rests for ``TABS_PAUSE``; that time
   is printed too.

Run: ``.venv/bin/python benchmarks/bench_app.py`` (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from layerscope.tui.app import TABS_PAUSE

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SIZE = (100, 30)

STARTUP = f"""
import time, asyncio
from layerscope.tui.launch import make_app

async def main():
    app = make_app(["resnet50"])
    frames = []
    display = app._display

    def recording_display(screen, update):
        if update is not None:
            ready = app.session is not None and not app.query_one("#tree").loading
            frames.append((time.time(), ready))
        return display(screen, update)

    app._display = recording_display
    async with app.run_test(size={SIZE!r}):
        while not any(ready for _, ready in frames):
            await asyncio.sleep(0.005)
        first = frames[0][0]
        tree = next(t for t, ready in frames if ready)
        text = "\\n".join(s.text for s in app.screen._compositor.render_strips())
        assert "layer4 Sequential" in text, text
        print(f"{{first:.3f}} {{tree:.3f}}")

asyncio.run(main())
"""


def measure_startup(runs: int = 3) -> tuple[float, float]:
    """Seconds from launching the process to the first frame, and to resnet50's tree on screen."""
    results = []
    for _ in range(runs):
        launched = time.time()
        out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True)
        painted, tree = map(float, out.stdout.split())
        results.append((painted - launched, tree - launched))
    return min(results, key=lambda r: r[1])


async def measure_cursor(spec: str, jump: str, keys: int = 60) -> dict[str, float]:
    from layerscope.models import load_model
    from layerscope.tui.app import LayerscopeApp

    t = time.perf_counter()
    loaded = load_model(spec)
    build = time.perf_counter() - t
    app = LayerscopeApp(loaded, spec=spec)
    painted: list[float] = []
    display = app._display

    def recording_display(screen, update):  # every frame the app sends to the terminal
        if update is not None:
            painted.append(time.perf_counter())
        return display(screen, update)

    app._display = recording_display
    async with app.run_test(size=SIZE) as pilot:
        t = time.perf_counter()
        while app.session is None:
            await pilot.pause(0.01)
        await pilot.pause()
        opened = time.perf_counter() - t
        n_modules = len(app.session.tree)
        t = time.perf_counter()
        await pilot.press("slash", *jump, "enter")
        await pilot.pause()
        jumped = time.perf_counter() - t
        assert app.session.node(app.current).name == jump, app.session.node(app.current).name
        timings: list[float] = []
        panel: list[float] = []
        for key in ["down", "down", "up", "up"] * (keys // 4):
            painted.clear()
            t = time.perf_counter()
            await pilot.press(key)
            while time.perf_counter() - (painted[-1] if painted else t) < 0.1:  # 100 ms without a frame
                await asyncio.sleep(0.005)
            if painted:
                timings.append(painted[0] - t)  # key sent -> first frame: the cursor line moved
                panel.append(painted[-1] - t)  # key sent -> last frame: the tabs describe the node
        lines = len(app.query_one("#tree")._tree_lines)
    return {
        "modules": n_modules, "build_model_s": build, "open_s": opened, "search_jump_s": jumped, "tree_lines": lines,
        "median_ms": statistics.median(timings) * 1000, "p95_ms": sorted(timings)[int(len(timings) * 0.95)] * 1000,
        "max_ms": max(timings) * 1000, "panel_median_ms": statistics.median(panel) * 1000,
    }


def main() -> int:
    painted, tree = measure_startup()
    print("start-up of resnet50 in a fresh process (importing torch included), best of 3:")
    print(f"  first frame painted      {painted:6.2f} s after launching the process")
    print(f"  module tree on screen    {tree:6.2f} s after launching the process")
    sys.path.insert(0, str(TESTS))  # big_models:hundred_thousand
    for spec, jump in (("resnet18", "layer4.1.conv2"), ("big_models:hundred_thousand", "blocks.5000.gate")):
        cursor = asyncio.run(measure_cursor(spec, jump))
        print(f"{spec}: {cursor['modules']:,} modules (model built in {cursor['build_model_s']:.1f} s outside the app)")
        print(f"  tree and Stats on screen {cursor['open_s']:6.2f} s after the app got the model (tree build included)")
        print(f"  type /{jump} + enter: {cursor['search_jump_s']:.2f} s ({cursor['tree_lines']:,} tree lines then)")
        print(f"  per arrow key, cursor moved on screen: median {cursor['median_ms']:.1f} ms, "
              f"p95 {cursor['p95_ms']:.1f} ms, max {cursor['max_ms']:.1f} ms")
        print(f"  per arrow key, Stats tab redrawn too (after a {TABS_PAUSE * 1000:.0f} ms rest): "
              f"median {cursor['panel_median_ms']:.1f} ms")
    ok = tree < 4.0 and cursor["p95_ms"] < 50
    print("OK" if ok else "SLOWER THAN PROMISED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
