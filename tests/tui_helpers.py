"""Helpers for the app's Pilot tests: wait for the workers, read what the screen shows."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.worker import WorkerFailed


async def settle(pilot: Pilot, rounds: int = 3) -> None:
    """Let every worker finish and every message they posted be handled (and the tabs catch up
    with the cursor: they follow it after a short pause)."""
    await pilot.pause(0.05)
    for _ in range(rounds):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:  # the app reports it (on_worker_state_changed); tests read the notification
            pass
        await pilot.pause()


def screen_text(app) -> str:
    """The characters on screen now, one line per terminal row (modals and toasts included).

    Textual 8 has no public call that returns the screen as text (``export_screenshot`` gives
    SVG), so this one helper reads the compositor; every test goes through it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(widget) -> list[str]:
    """The rows of the screen inside ``widget``'s region, as drawn (``screen_text`` cut to it)."""
    region = widget.region
    rows = screen_text(widget.app).splitlines()[region.y:region.bottom]
    return [row[region.x:region.right] for row in rows]


def tree_lines(tree) -> list:
    """Every line a Textual ``Tree`` holds (expanded or not), in display order, walked from its
    public ``root`` through ``children``."""
    found, stack = [], [tree.root]
    while stack:
        line = stack.pop()
        found.append(line)
        stack.extend(reversed(line.children))
    return found


def notifications(app) -> list[str]:
    """Every ``title: message`` the app passed to its public ``notify``, oldest first, expired
    toasts included (recorded by the ``recorded_notifications`` fixture in conftest)."""
    return list(app.__dict__.get(NOTIFIED, []))


NOTIFIED = "_test_notified"
