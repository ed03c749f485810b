"""Model clients over gRPC: deadlines on every call, bounded retries with
backoff on UNAVAILABLE, and client-side round-robin over every address the
service name resolves to.

Why round-robin here: a Kubernetes ClusterIP Service balances *connections*,
and gRPC keeps one HTTP/2 connection open, so every request would land on one
embedder pod. With a headless Service, `dns:///embedder:50051` resolves to all
pod IPs and the `round_robin` policy spreads calls over them (re-resolving as
pods come and go).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
from grpc import aio

from imgsearch import vectors
from imgsearch.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    ImgsearchError,
    InvalidInput,
    Overloaded,
    Unauthenticated,
    Unavailable,
)
from imgsearch.results import ImageCaptions, ImageVectors
from imgsearch.v1 import captioner_pb2, captioner_pb2_grpc, embedder_pb2, embedder_pb2_grpc
from search_gateway.domain import CollectionSpec
from search_gateway.model_clients.base import ScoreBatch

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def service_config(service: str, max_attempts: int = 4) -> str:
    """gRPC service config: round-robin and a retry policy for UNAVAILABLE."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": service}],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.2s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def channel_target(address: str) -> str:
    """'host:port' → 'dns:///host:port' so every resolved address is used."""
    if "://" in address or address.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return address
    return f"dns:///{address}"


def open_channel(
    address: str,
    service: str,
    credentials: grpc.ChannelCredentials | None = None,
    max_attempts: int = 4,
) -> aio.Channel:
    options = [
        ("grpc.service_config", service_config(service, max_attempts)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
        # Reconnect quickly after a model pod restarts (gRPC's default backs
        # off to two minutes, during which every call fails fast).
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    target = channel_target(address)
    if credentials is None:
        return aio.insecure_channel(target, options=options)
    return aio.secure_channel(target, credentials, options=options)


def translate(err: grpc.aio.AioRpcError, what: str) -> ImgsearchError:
    """A model service's status as the gateway's domain error."""
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"{what} unavailable: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"{what}: deadline exceeded")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidInput(details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Overloaded(f"{what}: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(f"{what} refused the gateway's credentials")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(f"{what}: {details}")
    return Unavailable(f"{what} failed with {code.name}")


def _timeout(timeout: float | None, default: float) -> float:
    return default if timeout is None else max(0.001, min(timeout, default))


class _RemoteClient:
    """One channel to a model service, its default deadline and call metadata;
    `_call` runs an RPC within that deadline and maps its error (`what`)."""

    def __init__(
        self,
        address: str,
        service: str,
        timeout_s: float,
        credentials: grpc.ChannelCredentials | None,
        metadata: Sequence[tuple[str, str]],
        max_attempts: int = 4,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._metadata = tuple(metadata)
        self._channel = open_channel(address, service, credentials, max_attempts)

    async def _call(self, rpc: Any, request: Any, timeout: float | None, what: str) -> Any:
        try:
            return await rpc(
                request, timeout=_timeout(timeout, self.timeout_s), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as err:
            raise translate(err, f"{what} at {self.address}") from err

    async def close(self) -> None:
        await self._channel.close()


class RemoteEmbedder(_RemoteClient):
    """The Embedder interface over an imgsearch.v1.Embedder service."""

    def __init__(
        self,
        address: str,
        timeout_s: float = 60.0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(address, "imgsearch.v1.Embedder", timeout_s, credentials, metadata)
        self._stub = embedder_pb2_grpc.EmbedderStub(self._channel)
        self._identity: CollectionSpec | None = None

    async def identity(self) -> CollectionSpec:
        if self._identity is None:
            try:
                info = await self._stub.Info(
                    embedder_pb2.InfoRequest(),
                    timeout=self.timeout_s,
                    metadata=self._metadata,
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as err:
                raise translate(err, f"embedder at {self.address}") from err
            self._identity = CollectionSpec(info.model, info.pretrained, info.dimension)
        return self._identity

    async def embed_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageVectors:
        dim = (await self.identity()).dimension
        reply = await self._call(
            self._stub.EmbedImages,
            embedder_pb2.EmbedImagesRequest(images=list(images), partial_results=True),
            timeout,
            "embedder",
        )
        return ImageVectors(
            [vectors.decode(v, dim) if v else None for v in reply.vectors],
            {e.index: e.reason for e in reply.errors},
        )

    async def embed_texts(self, texts: Sequence[str], timeout: float | None = None) -> np.ndarray:
        dim = (await self.identity()).dimension
        reply = await self._call(
            self._stub.EmbedTexts,
            embedder_pb2.EmbedTextsRequest(texts=list(texts)),
            timeout,
            "embedder",
        )
        return vectors.decode_rows(list(reply.vectors), dim)


class RemoteCaptioner(_RemoteClient):
    """The Captioner interface over an imgsearch.v1.Captioner service."""

    def __init__(
        self,
        address: str,
        timeout_s: float = 300.0,
        max_new_tokens: int = 0,
        num_beams: int = 0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(address, "imgsearch.v1.Captioner", timeout_s, credentials, metadata)
        self._options = captioner_pb2.CaptionOptions(
            max_new_tokens=max_new_tokens, num_beams=num_beams
        )
        self._stub = captioner_pb2_grpc.CaptionerStub(self._channel)

    async def caption_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageCaptions:
        reply = await self._call(
            self._stub.Caption,
            captioner_pb2.CaptionRequest(
                images=list(images), options=self._options, partial_results=True
            ),
            timeout,
            "captioner",
        )
        failed = {e.index: e.reason for e in reply.errors}
        captions = [None if i in failed else c for i, c in enumerate(reply.captions)]
        return ImageCaptions(captions, failed, model=reply.model)


class RemoteScorer(_RemoteClient):
    """The Scorer interface over the Captioner service's Score RPC.

    One retry at most (gRPC's minimum retry policy), always within the search's
    deadline: a re-rank that cannot be scored in time falls back to vector order
    instead of waiting.
    """

    def __init__(
        self,
        address: str,
        timeout_s: float = 10.0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(address, "imgsearch.v1.Captioner", timeout_s, credentials, metadata, 2)
        self._stub = captioner_pb2_grpc.CaptionerStub(self._channel)

    async def score(
        self, text: str, images: Sequence[bytes], timeout: float | None = None
    ) -> ScoreBatch:
        reply = await self._call(
            self._stub.Score,
            captioner_pb2.ScoreRequest(text=text, images=list(images), partial_results=True),
            timeout,
            "scorer",
        )
        failed = {e.index: e.reason for e in reply.errors}
        scores = [None if i in failed else float(v) for i, v in enumerate(reply.scores)]
        return ScoreBatch(values=scores, errors=failed, model=reply.model)
