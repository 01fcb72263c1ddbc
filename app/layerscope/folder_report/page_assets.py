"""The report page's style sheet and script, inlined into ``index.html``: the page opens from
disk with no server and fetches nothing (no CDN, no font, no analytics)."""

STYLE = """
:root { --fg: #1d232b; --muted: #5b6573; --line: #d8dde3; --good: #1f7a4d; --bad: #b3261e; --bar: #3a6ea5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0 auto;
       max-width: 1200px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); }
.muted, figcaption, .note { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: middle; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.wrong td.verdict { color: var(--bad); } tr.right td.verdict { color: var(--good); }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 200px; } figure img { width: 200px; height: auto; display: block; border-radius: 3px; }
figcaption { font-size: 12px; overflow-wrap: anywhere; }
img.thumb { width: 64px; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg .bar { fill: var(--bar); } svg .best { fill: var(--good); } svg .ci { stroke: var(--fg); stroke-width: 1.5; }
svg .axis { stroke: var(--muted); }
"""

SCRIPT = """
(function () {
  "use strict";
  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-value");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (!numeric) { return raw.toLowerCase(); }
    var value = parseFloat(raw);
    return isNaN(value) ? -Infinity : value;
  }
  function sortBy(table, header) {
    var index = Array.prototype.indexOf.call(header.parentNode.children, header);
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(header.parentNode.children, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header) {
      header.addEventListener("click", function () { sortBy(table, header); });
    });
  });
})();
"""
