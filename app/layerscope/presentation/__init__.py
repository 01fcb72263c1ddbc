"""Terminal presentation shared by both fronts (the CLI and the app): the one renderer of maps
for terminals (``render``), Kitty graphics and Sixel pictures (``pixels``), trees drawn with
guide lines (``guides``) and a diff as text (``diff_text``).

The only package besides ``cli`` and ``tui`` that imports Rich: the engine packages
(``models``, ``tree``, ``cam``, ``cost``, ``diff``, ``activations``, ``folder_report``)
compute figures and import neither Rich nor Textual (tests/test_engine_is_headless.py).
"""
