"""``index.html`` in a real browser: Debian's Chromium, headless, driven by Playwright.

The page is opened from disk with every request that is not a ``file:`` URL refused and
recorded, so a single fetch from a CDN or a font service fails the test; then: no console
error, every picture decoded, every record of ``records.jsonl`` in the table, and the table
sorted by a click. ``make setup`` installs Chromium where it is missing.
"""

from __future__ import annotations

import pytest

from report_helpers import read_jsonl

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_the_page_opens_offline_with_every_picture_and_record_and_sorts(browser, finished_report):
    out, summary = finished_report
    page = browser.new_page()
    errors, remote = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.goto((out / "index.html").as_uri())
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })")
    page.wait_for_function("Array.from(document.images).every(img => img.complete)", timeout=30_000)
    pictures = page.evaluate("Array.from(document.images).map(img => [img.getAttribute('src'), img.naturalWidth])")
    records = read_jsonl(out / "records.jsonl")
    assert remote == [] and errors == []
    assert pictures and all(width > 0 for _, width in pictures), [src for src, width in pictures if not width]
    sources = {src for src, _ in pictures}
    assert {r["thumbnail"] for r in records} <= sources and {c["mean_map"] for c in summary["classes"]} <= sources
    assert {r["overlay"] for r in records if r["layer"] == summary["best_layer"]} <= sources  # the galleries

    cells = page.eval_on_selector_all(
        "#image-table td.record", "cells => cells.map(c => [c.dataset.image, c.dataset.layer, c.dataset.value])"
    )
    assert sorted(cells) == sorted([r["image"], r["layer"], str(r["insertion_minus_deletion"])] for r in records)
    links = page.eval_on_selector_all("#image-table td.record a", "links => links.map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(r["overlay"] for r in records)

    best = summary["best_layer"]
    column = page.locator("#image-table th", has_text=best)
    for order in ("ascending", "descending"):
        column.click()
        assert column.get_attribute("aria-sort") == order
        values = page.eval_on_selector_all(
            f'#image-table td.record[data-layer="{best}"]', "cells => cells.map(c => parseFloat(c.dataset.value))"
        )
        assert (
            values == sorted(values, reverse=order == "descending") and len(values) == len(summary["layers"][0:1]) * 7
        )
    page.locator("#image-table th", has_text="image").first.click()
    names = page.eval_on_selector_all("#image-table tbody tr", "rows => rows.map(r => r.dataset.image)")
    assert names == sorted(names)
    assert errors == [] and remote == []
    assert page.locator("#misclassified figcaption").all_inner_texts() == [
        f"285/coffee_misfiled.png\n285 Egyptian cat → 967 espresso · ins − del "
        f"{next(r for r in records if r['image'] == '285/coffee_misfiled.png' and r['layer'] == best)['insertion_minus_deletion']:+.3f}"
    ]
