"""The layerscope app: a thin shell around ``MainScreen``, which holds the keys and the logic.

The frame paints before torch is imported; the screen loads the model, probes it and
computes maps in workers (``screens.model``), each failure handled in one place there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from layerscope.tui import failures
from layerscope.tui.keys import KEYS
from layerscope.tui.screens.main import MainScreen
from layerscope.tui.session import SAMPLE_IMAGE, AppOptions, LineReader, Loader

if TYPE_CHECKING:
    from layerscope.models.loaded import LoadedModel


class LayerscopeApp(App):
    """Browse ``load()``'s model; ``load`` runs in a worker so the frame paints at once."""

    CSS_PATH = "app.tcss"
    TITLE = "layerscope"

    def __init__(
        self,
        load: Loader | LoadedModel,
        *,
        spec: str = "model",
        image: Path | None = None,
        save_dir: Path | None = None,
        probe_input: str | Sequence[str] | None = None,
        pixels: str | None = None,
        read_line: LineReader | None = None,
        diff: str | None = None,
        trust: bool = False,
    ) -> None:
        """``probe_input``: one ``--input`` or several (one per positional argument of ``forward``,
        ``NAME=SHAPE[:dtype]`` for a keyword); ``read_line`` is the launcher's parser for ``l`` (the
        app does not import the launcher); ``diff``: a checkpoint to compare the model's weights
        with once it has loaded."""
        super().__init__()
        inputs = (probe_input,) if isinstance(probe_input, str) else tuple(probe_input or ())
        self.options = AppOptions(
            load=load if callable(load) else (lambda: load),
            spec=spec,
            image=Path(image) if image else SAMPLE_IMAGE,
            save_dir=Path(save_dir) if save_dir else Path.cwd(),
            probe_inputs=inputs,
            pixels=pixels,
            read_line=read_line,
            diff=diff,
            trust=trust,
        )
        self.log_path = failures.log_path()  # where a bug's traceback goes (the help screen says)
        self.main: MainScreen | None = None  # the screen, once the app runs

    def get_default_screen(self) -> Screen:
        self.main = MainScreen(self.options, self.log_path)
        return self.main

    async def action_quit(self) -> None:
        """Stop at once: a running map is told to stop, every worker is cancelled, and a thread
        blocked in I/O is left behind (``launch.run`` does not wait for it)."""
        if self.main is not None:
            self.main.stop_work()
        self.workers.cancel_all()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every key of ``KEYS`` in the command palette (quit is among Textual's own)."""
        for key in KEYS:
            if key.action != "quit":
                yield SystemCommand(f"{key.label} ({key.display})", key.description, self._runner(key.action))
        yield from super().get_system_commands(screen)

    def _runner(self, action: str) -> Callable[[], Any]:
        return lambda: self.run_action(action, self.main)
