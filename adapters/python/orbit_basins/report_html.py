# SPDX-License-Identifier: Apache-2.0
"""Self-contained HTML report of a basin comparison: inline SVG plots, no scripts, no fetches."""
from __future__ import annotations

import html
from typing import List, Sequence

from .classify import BASINS

__all__ = ["comparison_html"]

COLORS = {"CREATIVE": "#3a923a", "SEMANTIC_LOOP": "#e08a1e", "TOKEN_COLLAPSE": "#c0392b", "UNKNOWN": "#9a9a9a"}


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _stacked_bars(rows: List[tuple], width: int = 560, bar: int = 22, label_w: int = 150) -> str:
    """rows: (label, {basin: count}); one horizontal bar per row, shares of the row total."""
    h = len(rows) * (bar + 6) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 10}" height="{h}" '
           'font-family="sans-serif" font-size="12">']
    for i, (label, counts) in enumerate(rows):
        y = i * (bar + 6)
        total = sum(counts.values()) or 1
        out.append(f'<text x="{label_w - 6}" y="{y + bar * 0.7}" text-anchor="end">{_esc(label)}</text>')
        x = float(label_w)
        for b in BASINS:
            w = width * counts.get(b, 0) / total
            if w <= 0:
                continue
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{COLORS[b]}">'
                       f'<title>{_esc(label)}: {b} {counts[b]} of {total}</title></rect>')
            if w > 18:
                out.append(f'<text x="{x + w / 2:.1f}" y="{y + bar * 0.7}" text-anchor="middle" '
                           f'fill="white">{counts[b]}</text>')
            x += w
    y = len(rows) * (bar + 6) + 14
    x = label_w
    for b in BASINS:
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLORS[b]}"/>'
                   f'<text x="{x + 16}" y="{y}">{b}</text>')
        x += 130
    out.append("</svg>")
    return "".join(out)


def _transition_grid(ch: dict, cell: int = 46) -> str:
    n = len(BASINS)
    size = 120 + n * cell
    peak = max(max(r.values()) for r in ch["transitions"].values()) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 10}" height="{size}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="{120 + n * cell / 2}" y="12" text-anchor="middle">{_esc(ch["to"])} (columns)</text>']
    for j, b in enumerate(BASINS):
        out.append(f'<text x="{120 + j * cell + cell / 2}" y="28" text-anchor="middle">{b[:6]}</text>')
    for i, a in enumerate(BASINS):
        y = 34 + i * cell
        out.append(f'<text x="114" y="{y + cell / 2 + 4}" text-anchor="end">{_esc(ch["from"])}: {a[:6]}</text>')
        for j, b in enumerate(BASINS):
            v = ch["transitions"][a][b]
            shade = int(245 - 170 * v / peak)
            out.append(f'<rect x="{120 + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                       f'fill="rgb({shade},{shade},255)"/><text x="{120 + j * cell + cell / 2 - 1}" '
                       f'y="{y + cell / 2 + 4}" text-anchor="middle">{v}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(head: Sequence[str], rows: Sequence[Sequence]) -> str:
    h = "".join(f"<th>{_esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def comparison_html(r: dict, maps: Sequence[dict]) -> str:
    """The report of compare_maps(maps) as one HTML page."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Orbit basin comparison</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}"
             ".b{color:white;text-align:center}.note{background:#f6f6f0;padding:.6em 1em;border-left:4px solid #aa8}"
             "</style></head><body>",
             f"<h1>Basin comparison: {len(r['models'])} models, {r['prompts']} prompts</h1>"]
    parts.append("<h2>Basin distribution per model</h2>")
    parts.append(_stacked_bars([(m["label"], m["counts"]) for m in r["models"]]))
    rows = []
    for m in r["models"]:
        cells = [_esc(m["label"]), _esc(m["step"] or "")]
        for b in BASINS:
            lo, hi = m["wilson95"][b]
            cells.append(f"{m['counts'][b]} <small>[{lo:.2f}, {hi:.2f}]</small>")
        s = m["mean_spectral"]
        cells += [f"{s.get('hidden_effective_rank_min', float('nan')):.2f}",
                  f"{s.get('hidden_dominant_ratio_max', float('nan')):.3f}",
                  f"{s.get('attn_entropy_mean', float('nan')):.2f}"]
        rows.append(cells)
    parts.append(_table(["model", "step", *BASINS, "hidden eff. rank (min layer)",
                         "hidden dominant ratio (max layer)", "attention entropy"], rows))
    parts.append("<p>Counts with 95% Wilson intervals of the share; spectral columns are means over "
                 "prompts of the forward pass over each decoding's last context window.</p>")
    parts.append("<h2>Per category</h2>")
    for c in r["categories"]:
        parts.append(f"<h3>{_esc(c)}</h3>")
        parts.append(_stacked_bars([(m["label"], m["by_category"][c]) for m in r["models"]], width=360, bar=14))
    parts.append(f"<h2>Changes against {_esc(r['baseline'])}</h2>")
    rows = []
    for ch in r["changes"]:
        rows.append([_esc(ch["to"]), ch["prompts_changed"]] + [
            f"-{t['lost']}/+{t['gained']}, p={t['p_exact_mcnemar']:.2g} (Holm {t['p_holm']:.2g})"
            for t in ch["tests"]])
    parts.append(_table(["model", "prompts changed", *(f"{b}: lost/gained, exact McNemar p" for b in BASINS[:3])], rows))
    for ch in r["changes"]:
        parts.append(_transition_grid(ch))
    parts.append(f"<div class='note'><b>What the counts can and cannot show.</b> {_esc(r['caveats'])}</div>")
    parts.append("<h2>Every prompt</h2>")
    head = ["prompt", "category"] + [m["model"]["label"] for m in maps]
    rows = []
    for i, p in enumerate(maps[0]["prompts"]):
        cells = [f"<span title='{_esc(p['text'])}'>{_esc(p['id'])}</span>", _esc(p["category"])]
        for m in maps:
            q = m["prompts"][i]
            sample = q["decodings"][0]["text"][:80] if q["decodings"] else ""
            cells.append(f"<span class='b' style='background:{COLORS[q['basin']]};display:block' "
                         f"title='{_esc(q['evidence'])}: {_esc(sample)}'>{q['basin'][:6]}</span>")
        rows.append(cells)
    parts.append(_table(head, rows))
    parts.append("<p>Hover a cell for the evidence and the start of the first decoding.</p></body></html>")
    return "".join(parts)
