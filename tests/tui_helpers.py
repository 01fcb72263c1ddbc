"""Helpers for the app's Pilot tests: wait for the workers, read what the screen shows."""

from __future__ import annotations

from textual import events
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


async def paste(pilot: Pilot, text: str) -> None:
    """Paste ``text`` into the focused field as a terminal does: one bracketed paste, which
    Textual's driver turns into one ``events.Paste`` posted to the app (``Driver.process_message``).

    ``pilot.press`` waits for the app to go idle after every key (Textual sleeps in 20 ms steps,
    twice a key: ~60 ms a character measured here), so a typed path costs seconds; a paste costs
    one wait. The field gets the same value either way, and enter submits it through the same code."""
    event = events.Paste(text)
    event.set_sender(pilot.app)
    pilot.app.post_message(event)
    await pilot.pause()


async def enter_line(pilot: Pilot, key: str, line: str) -> None:
    """Press ``key`` (``l``, ``o``, ``slash``…: a prompt opens), clear the prompt (ctrl+u), paste
    ``line`` and press enter. Type key by key instead where typing itself is what a test is about
    (tab completion, search as you type, the palette's filter)."""
    await pilot.press(key, "ctrl+u")
    await paste(pilot, line)
    await pilot.press("enter")


def screen_text(app) -> str:
    """The characters on screen now, one line per terminal row (modals and toasts included).

    Textual 8 has no public call that returns the screen as text (``export_screenshot`` gives
    SVG), so this one helper reads the compositor; every test goes through it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(widget) -> list[str]:
    """The rows of the screen inside ``widget``'s region, as drawn (``screen_text`` cut to it)."""
    region = widget.region
    rows = screen_text(widget.app).splitlines()[region.y : region.bottom]
    return [row[region.x : region.right] for row in rows]


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
