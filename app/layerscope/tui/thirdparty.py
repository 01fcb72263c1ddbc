"""Every private API of textual that layerscope uses, in one place (the app's half of
``layerscope.thirdparty``, which holds torch's and torchvision's: the engine imports no
textual, so each layer has its own small module).

Each name here has a test in tests/test_thirdparty.py that fails loudly when textual changes
it; pyproject.toml pins textual below its next major version while one remains.
"""

from __future__ import annotations

# The widget ``Footer.compose`` yields per binding. Textual exports only ``Footer``; the footer
# that fits its width (``widgets/footer.py``) must tell key widgets from the rest and read each
# one's ``action``, ``key_display`` and ``description`` to decide which to drop.
from textual.widgets._footer import FooterKey

__all__ = ["FooterKey"]
