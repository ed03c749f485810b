"""The aiohttp application: routes, authentication, errors, the page.

Routes (bodies are imgsearch.v1 messages in protobuf's JSON mapping):

    POST /v1/search                 SearchRequest  -> SearchResponse
    POST /v1/points:get             GetRequest     -> GetResponse
    GET  /v1/points/{id}                           -> Hit (404 when unknown)
    POST /v1/points:delete          DeleteRequest  -> DeleteResponse
    GET  /v1/stats                                 -> StatsResponse
    POST /v1/images                 IngestRequest  -> IngestResult (one image)
    GET  /v1/thumbnails/{id}                       -> JPEG/WebP bytes
    GET  /v1/points/{id}/original                  -> the file (under read roots)
    GET  /v1/capabilities                          -> what this server offers (open)
    GET  /                                         -> the search page

Authentication is the gRPC gateway's: `authorization: Bearer <key>` or
`x-api-key: <key>`, checked by imgsearch.serving.auth.ApiKeys, the tenant put
where GatewayServicer reads it (current_tenant). Only the page's static files
and /v1/capabilities (which holds no data) are open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from imgsearch.errors import NotFound
from imgsearch.serving.auth import ApiKeys, set_tenant
from imgsearch.serving.interceptor import status_of
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.v1 import gateway_pb2
from search_gateway.servicer import GatewayServicer
from search_gateway.web.api import JsonApi, call_of, fetch_point
from search_gateway.web.media import MediaFiles, media_type_of
from search_gateway.web.status import code_for_http, error_response

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
OPEN_PATHS = frozenset({"/v1/capabilities"})
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CODE_KEY = web.RequestKey("grpc_code", grpc.StatusCode)

# The page loads nothing from elsewhere and runs no inline script, so a
# caption that smuggles markup can do nothing even if it were inserted as HTML.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@web.middleware
async def errors_as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors -> their status; anything unexpected -> INTERNAL, logged,
    with a generic message (no internals to clients), as in the gRPC interceptor."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/v1/"):
            raise
        code = code_for_http(exc.status)
        response = error_response(code, exc.text or exc.reason, exc.status)
    except Exception as exc:
        code, message = status_of(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s %s failed", request.method, request.path, exc_info=exc)
        else:
            log.info("%s %s -> %s: %s", request.method, request.path, code.name, message)
        response = error_response(code, message)
    else:
        code = grpc.StatusCode.OK
    request[CODE_KEY] = code
    response.headers.update(_SECURITY_HEADERS)
    return response


def counted(metrics: ServiceMetrics | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Requests and latency per route and gRPC code, in the gateway's own
    metric families (method label "HTTP <route>"), beside its RPCs."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if metrics is None or not request.path.startswith("/v1/"):
            return await handler(request)
        started = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        method = f"HTTP {resource.canonical if resource is not None else 'unmatched'}"
        code: grpc.StatusCode = request.get(CODE_KEY, grpc.StatusCode.UNKNOWN)
        metrics.requests.labels(method, code.name).inc()
        metrics.latency.labels(method).observe(time.perf_counter() - started)
        return response

    return count


def authentication(api_keys: ApiKeys | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = request.path.startswith("/v1/") and request.path not in OPEN_PATHS
        if api_keys is not None and guarded:
            metadata = [
                (name.lower(), value)
                for name, value in request.headers.items()
                if name.lower() in ("authorization", "x-api-key")
            ]
            # Each aiohttp request runs in its own task, so the tenant set
            # here is this request's alone (a context variable).
            set_tenant(api_keys.authenticate(metadata))
        return await handler(request)

    return authenticate


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def loopback_hosts_only(enabled: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Refuses requests whose Host is not a loopback name, when the server
    listens on loopback without keys (`imgsearch ui`): a foreign site whose
    DNS name is rebound to 127.0.0.1 would otherwise read the index as
    same-origin."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if enabled:
            name = request.url.host or ""  # from the Host header, port and brackets off
            if name not in LOOPBACK_NAMES:
                raise web.HTTPForbidden(text=f"this server answers only to localhost, not {name}")
        return await handler(request)

    return check_host


class MediaHandlers:
    def __init__(self, servicer: GatewayServicer, media: MediaFiles) -> None:
        self.servicer = servicer
        self.media = media

    async def thumbnail(self, request: web.Request) -> web.Response:
        """The GetThumbnail RPC (the thumbnail store, gRPC's tenancy rule);
        a point stored without one gets one rendered from its original, if
        the read roots allow (found through Get: tenancy again)."""
        point_id = request.match_info["id"]
        ask = gateway_pb2.GetThumbnailRequest(id=point_id)
        try:
            reply = await self.servicer.GetThumbnail(ask, call_of(request))
            data, media_type = reply.data, reply.media_type
        except NotFound:
            point = await fetch_point(self.servicer, point_id, request)
            data, media_type = await self.media.rendered_thumbnail(point.uri)
        return web.Response(body=data, content_type=media_type, headers=_private_cache())

    async def original(self, request: web.Request) -> web.StreamResponse:
        point = await fetch_point(self.servicer, request.match_info["id"], request)
        path = self.media.original(point.uri)
        response = web.FileResponse(path, headers=_private_cache())
        response.content_type = media_type_of(path)
        return response


def _private_cache() -> dict[str, str]:
    # Ids derive from content, so a picture never changes; `private` keeps it
    # out of shared caches, Vary keeps one tenant's answer from another's key.
    return {"Cache-Control": "private, max-age=86400", "Vary": "Authorization, X-Api-Key"}


def capabilities(
    *, auth: bool, thumbnails: bool, rerank: bool, max_k: int, max_body_bytes: int
) -> dict[str, Any]:
    """What the page may offer: the fields this server's SearchRequest and
    SearchResponse have (read from the compiled proto, so a page never sends
    a field an older gateway would refuse), and the optional features."""
    return {
        "authRequired": auth,
        "searchRequestFields": [f.json_name for f in gateway_pb2.SearchRequest.DESCRIPTOR.fields],
        "searchResponseFields": [f.json_name for f in gateway_pb2.SearchResponse.DESCRIPTOR.fields],
        "thumbnailStore": thumbnails,
        "rerank": rerank,
        "maxK": max_k,
        "maxBodyBytes": max_body_bytes,
    }


def create_app(
    servicer: GatewayServicer,
    media: MediaFiles,
    *,
    api_keys: ApiKeys | None = None,
    rerank: bool = False,
    max_k: int = 1000,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    loopback_only: bool = False,
    metrics: ServiceMetrics | None = None,
    thumbnail_store: bool = True,
) -> web.Application:
    """The JSON API and the page over one servicer (the gRPC server's own)."""
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[
            counted(metrics),
            errors_as_status,
            loopback_hosts_only(loopback_only),
            authentication(api_keys),
        ],
    )
    api = JsonApi(servicer)
    pictures = MediaHandlers(servicer, media)
    caps = capabilities(
        auth=api_keys is not None,
        thumbnails=thumbnail_store,
        rerank=rerank,
        max_k=max_k,
        max_body_bytes=max_body_bytes,
    )

    async def capabilities_handler(request: web.Request) -> web.Response:
        return web.json_response(caps)

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    app.router.add_post("/v1/search", api.search)
    app.router.add_post("/v1/points:get", api.get)
    app.router.add_post("/v1/points:delete", api.delete)
    app.router.add_get("/v1/points/{id}", api.point)
    app.router.add_get("/v1/points/{id}/original", pictures.original)
    app.router.add_get("/v1/stats", api.stats)
    app.router.add_post("/v1/images", api.ingest)
    app.router.add_get("/v1/thumbnails/{id}", pictures.thumbnail)
    app.router.add_get("/v1/capabilities", capabilities_handler)
    app.router.add_get("/", page)
    # follow_symlinks=False: aiohttp resolves the path and refuses anything
    # outside STATIC, '..' included.
    app.router.add_static("/static/", STATIC, follow_symlinks=False, append_version=False)
    return app
