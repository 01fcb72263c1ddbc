"""``index.html``: the whole report on one page that opens from disk.

Built from ``summary.json`` and the records alone: the layer ranking as an inline SVG
chart, a sortable table of every image (one cell per record), galleries of the most and
least faithful maps and of misclassified images at the leading eligible layer, the per-class mean
maps, and the skipped files. Pictures are the report folder's own PNGs, by relative path;
style and script are inline (``page_assets``), so nothing is fetched from anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from layerscope.folder_report.claims import excluded_line
from layerscope.folder_report.page_assets import SCRIPT, STYLE
from layerscope.folder_report.stats import images

GALLERY = 24  # pictures per gallery


LAYER_COLUMNS = 5  # layer columns in the images table; the rest fold into one cell


def render(summary: dict, records: Sequence[dict], skipped: Sequence[dict]) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>layerscope report: {escape(summary['model'])} on {escape(summary['images_folder'])}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        _header(summary),
        _layers(summary),
        _galleries(summary, records),
        _classes(summary),
        _image_table(summary, records),
        _skipped(skipped),
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _header(summary: dict) -> str:
    counts = summary["counts"]
    accuracy = (
        "no labels"
        if summary["accuracy"] is None
        else f"{summary['accuracy']:.1%} ({counts['correct']} of {counts['labelled']} labelled images)"
    )
    facts = [
        ("model", f"{summary['model']} ({summary['weights']})"),
        ("images", f"{summary['images_folder']}: {summary['images']} explained, {summary['skipped']} skipped"),
        ("method", f"{summary['method']}, class: {summary['class']}, {summary['steps']} steps"),
        (
            "best layer",
            f"{summary['best_layer']} ({summary['best_access_expression']})"
            if summary["best_layer"]
            else "none separated"
            if summary["leading_layer"]
            else "-",
        ),
        ("the evidence", summary["claim"]),
        *([("not eligible", excluded_line(summary["not_eligible"]))] if summary["not_eligible"] else []),
        ("one photo vs the folder", summary["single_image"]["note"]),
        ("accuracy", accuracy),
        ("sanity check", summary["sanity"]["verdict"]),
        *([("labels", summary["labels_note"])] if summary["labels_note"] else []),
    ]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts)
    return f'<header><h1>Folder report</h1><dl class="facts">{rows}</dl></header>'


def _layers(summary: dict) -> str:
    rows = []
    for place, row in enumerate(summary["layers"], 1):
        ci = row["ci95"]
        rows.append(
            f'<tr><td class="num">{place}</td><td>{escape(row["layer"])}</td><td><code>{escape(row["access_expression"])}'
            f'</code></td><td class="num">{_signed(row["mean_insertion_minus_deletion"])}</td>'
            f'<td class="num">{"-" if ci is None else f"{_signed(ci[0])} to {_signed(ci[1])}"}</td>'
            f'<td class="num">{row["n"]}</td><td class="num">{_plain(row["mean_deletion_auc"])}</td>'
            f'<td class="num">{_plain(row["mean_insertion_auc"])}</td><td class="num">{_plain(row["mean_average_drop"])}'
            f'</td><td class="num">{row["best_on_images"]}</td><td>{escape(_sanity(row))}</td>'
            f"<td>{escape(_eligible(row))}</td></tr>"
        )
    head = (
        '<tr><th class="num">#</th><th>layer</th><th>access</th><th class="num">mean ins − del</th>'
        '<th class="num">95% CI</th><th class="num">n</th><th class="num">del</th><th class="num">ins</th>'
        '<th class="num">drop</th><th class="num">best on (images)</th><th>sanity</th><th>eligible</th></tr>'
    )
    return (
        f'<section id="layers"><h2>Layers, highest mean first</h2>{_chart(summary["layers"], summary["leading_layer"])}'
        f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">ins − del: insertion minus deletion AUC of the softmax probability of the explained class '
        "(higher: the map finds what the model uses); CI: Student's t over the images; drop: mean average drop; "
        "best on: the images whose own ranking puts this layer first; sanity: the median ρ of the randomisation "
        "check. Layers are told apart by paired differences (per image, one layer's ins − del minus the "
        f"other's, Student's t), not by these intervals: {escape(summary['claim'])}.</p></section>"
    )


def _sanity(row: dict) -> str:
    rho = row.get("sanity_rho")
    return row.get("sanity", "not checked") + ("" if rho is None else f" (ρ {rho:+.2f})")


def _eligible(row: dict) -> str:
    return "yes" if row.get("eligible") else row.get("not_eligible_because") or "no images"


def _chart(rows: Sequence[dict], leading: str | None) -> str:
    """Horizontal bars of the mean with CI whiskers, highest first; the leading eligible layer stands out."""
    rows = [r for r in rows if r["n"]]
    if not rows:
        return ""
    values = [v for r in rows for v in (r["mean_insertion_minus_deletion"], *(r["ci95"] or ()))] + [0.0]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    left, width, line = 180, 440, 24
    x = lambda v: left + (v - low) / span * width  # noqa: E731
    parts = [
        f'<svg role="img" aria-label="mean insertion minus deletion per layer" width="{left + width + 70}" '
        f'height="{line * len(rows) + 24}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, row in enumerate(rows):
        y, mean = i * line + 4, row["mean_insertion_minus_deletion"]
        start, end = sorted((x(0.0), x(mean)))
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(row["layer"])}</text>')
        parts.append(
            f'<rect class="{"best" if row["layer"] == leading else "bar"}" x="{start:.1f}" y="{y + 3}" '
            f'width="{max(end - start, 1):.1f}" height="{line - 10}"><title>{_signed(mean)}</title></rect>'
        )
        if row["ci95"]:
            a, b = (x(v) for v in row["ci95"])
            parts.append(f'<line class="ci" x1="{a:.1f}" x2="{b:.1f}" y1="{y + 10}" y2="{y + 10}"/>')
        parts.append(f'<text x="{left + width + 6}" y="{y + 14}">{_signed(mean)}</text>')
    bottom = line * len(rows) + 4
    parts.append(f'<line class="axis" x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="0" y2="{bottom}"/>')
    parts.append(f'<text x="{x(0.0):.1f}" y="{bottom + 14}" text-anchor="middle">0</text></svg>')
    return "".join(parts)


def _galleries(summary: dict, records: Sequence[dict]) -> str:
    best = summary["leading_layer"]
    if best is None:
        return ""  # no image could be used: the skipped files say why
    at_best = [r for r in records if r["layer"] == best]
    ranked = sorted(at_best, key=lambda r: -r["insertion_minus_deletion"])
    wrong = [r for r in at_best if r["correct"] is False]
    least = min(GALLERY, len(ranked) // 2)  # a small folder splits in two halves: no map shown twice
    most = ranked[: min(GALLERY, len(ranked) - least)]
    return "".join(
        [
            _gallery("most-faithful", f"Most faithful maps at {best}", most, len(ranked)),
            _gallery("least-faithful", f"Least faithful maps at {best}", ranked[::-1][:least], len(ranked)),
            _gallery("misclassified", f"Misclassified images, maps at {best}", wrong[:GALLERY], len(wrong))
            if summary["counts"]["labelled"]
            else "",
        ]
    )


def _gallery(anchor: str, title: str, rows: Sequence[dict], total: int) -> str:
    shown = f" ({len(rows)} of {total})" if total > len(rows) else ""
    figures = "".join(
        f'<figure><a href="{_src(r["overlay"])}"><img src="{_src(r["overlay"])}" alt="{escape(r["image"])}" '
        f'loading="lazy"></a><figcaption>{escape(r["image"])}<br>{escape(_verdict(r))} · ins − del '
        f"{_signed(r['insertion_minus_deletion'])}</figcaption></figure>"
        for r in rows
    )
    body = figures or '<p class="note">none</p>'
    return f'<section id="{anchor}"><h2>{escape(title)}{shown}</h2><div class="gallery">{body}</div></section>'


def _classes(summary: dict) -> str:
    if summary["leading_layer"] is None:
        return ""
    figures = "".join(_class_figure(row) for row in summary["classes"])
    key = "label" if summary["counts"]["labelled"] else "predicted class"
    return (
        f'<section id="classes"><h2>Classes: where the model looks, on average</h2><p class="note">Mean map at '
        f"{escape(str(summary['leading_layer']))} of the images of each {key} (each map scaled 0–1, averaged over "
        f'the model\'s input, the mean scaled to its own range).</p><div class="gallery">{figures}</div></section>'
    )


def _class_figure(row: dict) -> str:
    count = f"{row['count']} image{'s' if row['count'] != 1 else ''}"
    accuracy = "" if row["accuracy"] is None else f" · accuracy {row['accuracy']:.0%}"
    picture = (
        f'<img src="{_src(row["mean_map"])}" alt="mean map of class {row["class"]}" loading="lazy">'
        if "mean_map" in row
        else ""
    )
    return f"<figure>{picture}<figcaption>{row['class']} {escape(row['name'] or '')}<br>{count}{accuracy}</figcaption></figure>"


def _image_table(summary: dict, records: Sequence[dict]) -> str:
    """One row per image; the top ``LAYER_COLUMNS`` layers as sortable columns and the rest
    folded into one "more" cell, so that the table keeps the page's width with 16 layers."""
    ranked = [row["layer"] for row in summary["layers"]]
    layers, folded = ranked[:LAYER_COLUMNS], ranked[LAYER_COLUMNS:]
    by_image: dict[str, dict[str, dict]] = {}
    for record in records:
        by_image.setdefault(record["image"], {})[record["layer"]] = record
    head = (
        '<tr><th>photo</th><th>image</th><th>label</th><th>predicted</th><th class="num" data-type="number">'
        "p(top-1)</th><th>explained</th>"
        + "".join(f'<th class="num" data-type="number">{escape(layer)}</th>' for layer in layers)
        + (f"<th>{len(folded)} more layers</th>" if folded else "")
        + "</tr>"
    )
    rows = []
    for row in images(records):
        cells = by_image[row["image"]]
        state = "" if row["correct"] is None else ' class="right"' if row["correct"] else ' class="wrong"'
        rows.append(
            f'<tr{state} data-image="{escape(row["image"])}"><td><img class="thumb" src="{_src(row["thumbnail"])}" '
            f'alt="" loading="lazy"></td><td>{escape(row["image"])}</td><td>{escape(_name(row["label"], row["label_name"]))}'
            f'</td><td class="verdict">{escape(_name(row["predicted"], row["predicted_name"]))}</td>'
            f'<td class="num">{row["top5"][0]["probability"]:.3f}</td><td>{escape(_name(row["class"], row["class_name"]))}</td>'
            + "".join(_record_cell(cells.get(layer)) for layer in layers)
            + _folded_cell(cells, folded)
            + "</tr>"
        )
    more = f" The {len(folded)} layers after the top {len(layers)} are in each row's last cell." if folded else ""
    return (
        f'<section id="images"><h2>Images ({len(rows)})</h2><p class="note">Click a column to sort; a layer\'s '
        f"column is its insertion − deletion on that image, linking to its map.{more}</p>"
        f'<table id="image-table" class="sortable"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></section>'
    )


def _folded_cell(cells: dict[str, dict], layers: Sequence[str]) -> str:
    """The layers past the columns, on demand: a ``<details>`` of ``layer +0.123`` links."""
    if not layers:
        return ""
    links = "".join(
        f'<li data-layer="{escape(layer)}">{escape(layer)} <a href="{_src(cells[layer]["overlay"])}">'
        f"{_signed(cells[layer]['insertion_minus_deletion'])}</a></li>"
        if layer in cells
        else f"<li>{escape(layer)} -</li>"
        for layer in layers
    )
    return f'<td class="more"><details><summary>{len(layers)} more</summary><ul>{links}</ul></details></td>'


def _record_cell(record: dict | None) -> str:
    if record is None:
        return '<td class="num" data-value="">-</td>'
    value = record["insertion_minus_deletion"]
    return (
        f'<td class="num record" data-image="{escape(record["image"])}" data-layer="{escape(record["layer"])}" '
        f'data-value="{value}"><a href="{_src(record["overlay"])}">{_signed(value)}</a></td>'
    )


def _skipped(skipped: Sequence[dict]) -> str:
    if not skipped:
        return '<section id="skipped"><h2>Skipped files</h2><p class="note">none</p></section>'
    rows = "".join(
        f"<tr><td>{escape(s['path'])}</td><td>{escape(s['reason'])}</td><td>{escape(s['detail'])}</td></tr>"
        for s in skipped
    )
    return (
        f'<section id="skipped"><h2>Skipped files ({len(skipped)})</h2><table class="sortable"><thead><tr>'
        f"<th>file</th><th>reason</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _verdict(record: dict) -> str:
    predicted = _name(record["predicted"], record["predicted_name"])
    if record["label"] is None:
        return predicted
    return f"{_name(record['label'], record['label_name'])} → {predicted}" if not record["correct"] else predicted


def _name(index: int | None, name: str | None) -> str:
    if index is None:
        return "-"
    return f"{index} {name}" if name else str(index)


def _src(relative: str) -> str:
    return escape(quote(relative))


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _plain(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
