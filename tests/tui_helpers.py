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
    """The characters on screen now, one line per terminal row (modals and toasts included)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def notifications(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]
