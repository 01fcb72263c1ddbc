"""A real ``layerscope report``'s page, photographed in headless Chromium for the docs.

Run by ``make screenshots``: the folder the tests build (the two sample photos, crops,
flips, a misfiled espresso and five unusable files, in class folders), the ImageNet
mobilenet_v2 at three layers, then ``index.html`` opened from disk and saved as
``screenshots/report.png`` (the top of the page: facts, layer chart and galleries).
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots" / "report.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from playwright.sync_api import sync_playwright

    from layerscope.folder_report import FolderReport, ModelArgs, ReportRequest
    from report_helpers import make_folder

    with tempfile.TemporaryDirectory() as temp:
        images = make_folder(Path(temp))
        request = ReportRequest(
            images=images,
            out=Path(temp) / "report",
            layers="features.16,features.17,features.18",
            model=ModelArgs("mobilenet_v2", weights="IMAGENET1K_V1"),
            steps=20,
            workers=0,
        )
        report = FolderReport(request)
        report.run()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.goto(report.page_path.resolve().as_uri())
            page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })")
            page.wait_for_function("Array.from(document.images).every(img => img.complete)")
            shot = Image.open(io.BytesIO(page.screenshot()))
            browser.close()
    shot.convert("RGB").quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(
        OUT, optimize=True
    )  # a third of the bytes
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
