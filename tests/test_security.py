"""Authentication, tenant isolation and TLS, through real gRPC on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embedder_service.server import start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.errors import ImgsearchError
from imgsearch.serving.auth import ApiKeys, bearer
from imgsearch.serving.security import channel_credentials
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc
from search_gateway import domain as d
from search_gateway.core import SearchQuery
from search_gateway.ingest import IngestItem, IngestStatus
from search_gateway.remote_api import RemoteGateway
from tests.conftest import encode_image, pattern
from tests.gateway_harness import Models, ingest_all, suite

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef00"
MODELS_KEY = "models-key-0123456789abcdef"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    root = tmp_path_factory.mktemp("security_models")
    config, checkpoint = build_tiny_clip(root / "clip", name="tiny-clip-security")
    return Models(config, checkpoint, build_tiny_blip(root / "blip"))


def test_key_file_parsing(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text(f"# comment\n{ALICE_KEY} alice\n\n{BOB_KEY}\n")
    keys = ApiKeys.from_file(f)
    assert keys.authenticate(bearer(ALICE_KEY)) == "alice"
    assert keys.authenticate([("x-api-key", BOB_KEY)]) == "default"
    with pytest.raises(ImgsearchError, match="invalid API key"):
        keys.authenticate(bearer("nope-nope-nope-nope"))
    with pytest.raises(ImgsearchError, match="missing API key"):
        keys.authenticate([])
    with pytest.raises(ValueError, match="16 characters"):
        ApiKeys.single("short")


async def _status(coro) -> str:  # type: ignore[no-untyped-def]
    try:
        await coro
    except ImgsearchError as exc:
        return exc.status_name
    except grpc.aio.AioRpcError as err:
        return err.code().name
    return "OK"


async def test_tenants_cannot_see_each_other(models: Models, tmp_path: Path) -> None:
    keys = tmp_path / "gateway-keys"
    keys.write_text(f"{ALICE_KEY} alice\n{BOB_KEY} bob\n")
    shared = encode_image(pattern(1))
    alice_only = [encode_image(pattern(i)) for i in (2, 3)]
    bob_only = encode_image(pattern(4))
    async with suite(
        models,
        tmp_path / "data",
        model_extra={"api_key": MODELS_KEY},
        client_metadata=bearer(ALICE_KEY),
        api_keys_file=str(keys),
        models_api_key=MODELS_KEY,
    ) as s:
        address = f"127.0.0.1:{s.server.port}"
        alice = s.gateway
        bob = RemoteGateway(address, metadata=bearer(BOB_KEY))
        nobody = RemoteGateway(address)
        forger = RemoteGateway(address, metadata=bearer("forged-key-0123456789"))
        try:
            # No key or a wrong key: UNAUTHENTICATED for every RPC; health stays open.
            assert await _status(nobody.stats()) == "UNAUTHENTICATED"
            assert await _status(forger.search(SearchQuery(text="x"))) == "UNAUTHENTICATED"
            async with grpc.aio.insecure_channel(address) as ch:
                reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

            a_out = await ingest_all(
                alice,
                [IngestItem(data=x, uri=f"a{i}") for i, x in enumerate([shared, *alice_only])],
            )
            b_out = await ingest_all(
                bob, [IngestItem(data=shared, uri="b0"), IngestItem(data=bob_only, uri="b1")]
            )
            # The same image is a separate point per tenant: no cross-tenant dedup leak.
            assert [o.status for o in b_out] == [IngestStatus.ADDED] * 2
            assert b_out[0].id != a_out[0].id
            a_ids = {o.id for o in a_out}
            b_ids = {o.id for o in b_out}

            # Search, with or without a filter that names the other tenant.
            hits = await alice.search(SearchQuery(text="x", k=50))
            assert {h.id for h in hits} == a_ids
            sneaky = d.Filter(should=(d.Match("tenant", "bob"), d.Match("tenant", "alice")))
            hits = await bob.search(SearchQuery(text="x", k=50, filter=sneaky))
            assert {h.id for h in hits} == b_ids
            # Fetch, "more like this", count and delete of foreign ids.
            found, missing = await bob.get(sorted(a_ids))
            assert found == [] and sorted(missing) == sorted(a_ids)
            foreign = next(iter(a_ids))
            assert await _status(bob.search(SearchQuery(point_id=foreign))) == "NOT_FOUND"
            assert (await bob.stats()).count == 2 and (await alice.stats()).count == 3
            assert await bob.delete(ids=sorted(a_ids)) == 0
            everything = d.Filter(must_not=(d.Match("path", "no-such-path"),))
            assert await bob.delete(filter=everything) == 2
            assert (await alice.stats()).count == 3
            # A client cannot choose its tenant through metadata.
            [forged] = await ingest_all(
                alice, [IngestItem(data=bob_only, uri="x", metadata={"tenant": "bob"})]
            )
            assert forged.status is IngestStatus.FAILED and forged.error_code == "INVALID_ARGUMENT"
        finally:
            for client in (bob, nobody, forger):
                await client.close()

        # The model services refuse calls without the models' key.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.embedder.port}") as ch:
            stub = embedder_pb2_grpc.EmbedderStub(ch)
            req = embedder_pb2.EmbedTextsRequest(texts=["hi"])
            assert await _status(stub.EmbedTexts(req)) == "UNAUTHENTICATED"
            assert await _status(stub.EmbedTexts(req, metadata=bearer(MODELS_KEY))) == "OK"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for localhost and a client certificate."""
    d_ = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        str(d_ / "ca.key"),
        "-out",
        str(d_ / "ca.pem"),
        "-subj",
        "/CN=test-ca",
    )
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(d_ / f"{name}.key"),
            "-out",
            str(d_ / f"{name}.csr"),
            "-subj",
            "/CN=localhost",
        )
        ext = d_ / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(d_ / f"{name}.csr"),
            "-CA",
            str(d_ / "ca.pem"),
            "-CAkey",
            str(d_ / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(d_ / f"{name}.pem"),
            "-extfile",
            str(ext),
        )
    return d_  # fmt: skip


async def test_tls_and_mutual_tls(tiny_clip: tuple[Path, Path], pki: Path) -> None:
    config, checkpoint = tiny_clip
    settings = EmbedderSettings(
        model=str(config),
        pretrained=str(checkpoint),
        host="localhost",
        port=0,
        metrics_port=-1,
        tls_cert_file=str(pki / "server.pem"),
        tls_key_file=str(pki / "server.key"),
        tls_client_ca_file=str(pki / "ca.pem"),
    )
    srv = await start_embedder_server(settings)
    await srv.wait_ready()
    target = f"localhost:{srv.port}"
    req = embedder_pb2.EmbedTextsRequest(texts=["hello"])
    try:
        good = channel_credentials(
            str(pki / "ca.pem"), str(pki / "client.pem"), str(pki / "client.key")
        )
        async with grpc.aio.secure_channel(target, good) as ch:
            reply = await embedder_pb2_grpc.EmbedderStub(ch).EmbedTexts(req, timeout=10)
            assert len(reply.vectors) == 1
        no_client_cert = channel_credentials(str(pki / "ca.pem"))
        async with grpc.aio.secure_channel(target, no_client_cert) as ch:
            assert (
                await _status(embedder_pb2_grpc.EmbedderStub(ch).EmbedTexts(req, timeout=5))
                == "UNAVAILABLE"
            )
        async with grpc.aio.insecure_channel(target) as ch:
            assert (
                await _status(embedder_pb2_grpc.EmbedderStub(ch).EmbedTexts(req, timeout=5))
                == "UNAVAILABLE"
            )
    finally:
        await srv.stop(1)
