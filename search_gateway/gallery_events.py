"""The HTML gallery of a grouped or time-ordered page: one section per event.

Images come from the thumbnail store through the API (embedded or gateway),
never from the original files, so the gallery shows video frames, stays
small (a few KB per hit) and works when the originals moved. A video hit
links to the video at that second (`#t=` media fragment).
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.errors import ImgsearchError
from search_gateway.cli.events_cli import video_link
from search_gateway.core import Hit
from search_gateway.events import SearchPage
from search_gateway.thumbnails import media_type

if TYPE_CHECKING:
    from search_gateway.cli.connect import GatewayAPI

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>imgsearch: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }}
h1 {{ font-size: 1.3rem; }} h2 {{ font-size: 1rem; margin-top: 1.5rem; }}
.meta {{ color: #666; font-size: .9rem; }}
.grid {{ display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); }}
figure {{ margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px;
          padding: .5rem; }}
figure img {{ width: 100%; height: 200px; object-fit: contain; background: #eee; }}
figcaption {{ font-size: .85rem; word-break: break-all; }}
.score {{ float: right; color: #555; }}
</style></head>
<body>
<h1>Results for <q class="query">{query}</q></h1>
<p class="meta">{count} {unit} &middot; written {written}</p>
{sections}
</body></html>
"""

_SECTION = """<section class="group" data-key="{key}" data-size="{size}">
<h2>#{rank} &middot; {size} hits &middot; {span}</h2>
<div class="grid">
{figures}
</div></section>"""

_FIGURE = """<figure class="hit" data-id="{id}" data-score="{score:.4f}">
<a href="{link}"><img src="{src}" alt="{alt}"></a>
<figcaption><span class="score">{score:.3f}</span>{when}<br><a href="{link}">{name}</a>
</figcaption></figure>"""

_MISSING = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="150">'
    b'<rect width="200" height="150" fill="#ddd"/></svg>'
).decode()


async def _thumb(api: GatewayAPI, point_id: str) -> str:
    try:
        data = await api.thumbnail(point_id)
    except ImgsearchError:
        return _MISSING
    return f"data:{media_type(data)};base64," + base64.b64encode(data).decode()


async def _figure(api: GatewayAPI, hit: Hit) -> str:
    link = video_link(hit.uri, hit.payload)
    uri = link if "://" in link else Path(hit.uri).resolve().as_uri() + link[len(hit.uri) :]
    return _FIGURE.format(
        id=html.escape(hit.id),
        score=hit.score,
        link=html.escape(uri),
        src=await _thumb(api, hit.id),
        alt=html.escape(hit.caption or Path(hit.uri).name),
        when=html.escape(str(hit.payload.get("timestamp", ""))),
        name=html.escape(Path(hit.uri).name + link[len(hit.uri) :]),
    )


async def render_event_gallery(api: GatewayAPI, query: str, page: SearchPage) -> str:
    sections = []
    if page.groups:
        for rank, g in enumerate(page.groups, 1):
            figures = [await _figure(api, h) for h in g.hits[:8]]
            span = f"{g.start} – {g.end}" if g.start else "no time"
            sections.append(
                _SECTION.format(
                    key=html.escape(g.key), size=g.size, rank=rank, span=html.escape(span),
                    figures="\n".join(figures),
                )
            )  # fmt: skip
    else:
        figures = [await _figure(api, h) for h in page.hits]
        body = "\n".join(figures)
        sections.append(_SECTION.format(key="", size=len(page.hits), rank=1, span="", figures=body))
    return _PAGE.format(
        title=html.escape(query),
        query=html.escape(query),
        count=len(page.groups) or len(page.hits),
        unit="events" if page.groups else "hits",
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections="\n".join(sections),
    )


async def write_event_gallery(api: GatewayAPI, out: Path, query: str, page: SearchPage) -> Path:
    out.write_text(await render_event_gallery(api, query, page), encoding="utf-8")
    return out
