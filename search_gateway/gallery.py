"""A self-contained HTML gallery of search results: thumbnails inlined as
data URIs, so the file opens anywhere, offline, and can be mailed around."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from imgsearch.errors import ImgsearchError
from imgsearch.images import decode_rgb
from search_gateway.core import Hit

THUMB_SIDE = 256

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>imgsearch: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }}
h1 {{ font-size: 1.3rem; }} .meta {{ color: #666; font-size: .9rem; }}
.grid {{ display: grid; gap: 1rem;
         grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); }}
figure {{ margin: 0; background: #fff; border: 1px solid #ddd;
          border-radius: 6px; padding: .5rem; }}
figure img {{ width: 100%; height: 200px; object-fit: contain; background: #eee; }}
figcaption {{ font-size: .85rem; word-break: break-all; }}
.rank {{ font-weight: bold; }} .score {{ float: right; color: #555; }}
.caption {{ display: block; font-style: italic; margin: .25rem 0; word-break: normal; }}
.path {{ color: #777; font-size: .75rem; }}
</style></head>
<body>
<h1>Results for <q class="query">{query}</q></h1>
<p class="meta">{count} hits &middot; {details} &middot; written {written}</p>
<div class="grid">
{figures}
</div>
</body></html>
"""

_FIGURE = """<figure class="hit" data-id="{id}" data-rank="{rank}" \
data-score="{score:.4f}"{rerank_attr}>
<img src="{src}" alt="{alt}">
<figcaption><span class="rank">#{rank}</span><span class="score">{scores}</span>
<span class="caption">{caption}</span><span class="path">{path}</span></figcaption>
</figure>"""

_MISSING = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="150">'
        b'<rect width="200" height="150" fill="#ddd"/><text x="100" y="80" font-size="14" '
        b'text-anchor="middle" fill="#888">image not readable here</text></svg>'
    ).decode()
)


def thumbnail_data_uri(path: str) -> str:
    """A small JPEG of the image as a data: URI (a placeholder if unreadable)."""
    try:
        image = decode_rgb(Path(path).read_bytes())
    except (OSError, ImgsearchError):
        return _MISSING
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _scores(hit: Hit) -> str:
    """Both scores of a re-ranked hit (vector and match probability), else the vector one."""
    if hit.rerank_score is None:
        return f"{hit.score:.3f}"
    return f"vector {hit.score:.3f} &middot; match {hit.rerank_score:.3f}"


def render_gallery(query: str, hits: Sequence[Hit], details: str = "") -> str:
    figures = []
    for rank, hit in enumerate(hits, 1):
        figures.append(
            _FIGURE.format(
                id=html.escape(hit.id),
                rank=rank,
                score=hit.score,
                scores=_scores(hit),
                rerank_attr=(
                    f' data-rerank-score="{hit.rerank_score:.4f}"'
                    if hit.rerank_score is not None
                    else ""
                ),
                src=thumbnail_data_uri(hit.uri),
                alt=html.escape(hit.caption or Path(hit.uri).name),
                caption=html.escape(hit.caption),
                path=html.escape(hit.uri),
            )
        )
    return _PAGE.format(
        title=html.escape(query),
        query=html.escape(query),
        count=len(hits),
        details=html.escape(details),
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        figures="\n".join(figures),
    )


def write_gallery(out: Path, query: str, hits: Sequence[Hit], details: str = "") -> Path:
    out.write_text(render_gallery(query, hits, details), encoding="utf-8")
    return out
