"""Security settings every server shares: API keys and TLS (optionally mTLS).

Mixed into each service's settings class, so the env vars follow its prefix
(IMGSEARCH_EMBEDDER_API_KEY, IMGSEARCH_TLS_CERT_FILE, ...).
"""

from __future__ import annotations

from pathlib import Path

import grpc
from pydantic import BaseModel, Field

from imgsearch.serving.auth import ApiKeys


class ServerSecurity(BaseModel):
    api_key: str | None = Field(
        None, description="require this key from callers (single shared key)"
    )
    api_keys_file: str | None = Field(
        None, description="file of '<key> <tenant>' lines; callers must send one of the keys"
    )
    tls_cert_file: str | None = Field(None, description="server certificate (PEM): enables TLS")
    tls_key_file: str | None = Field(None, description="server private key (PEM)")
    tls_client_ca_file: str | None = Field(
        None, description="CA (PEM) that client certificates must chain to: enables mTLS"
    )

    def api_keys(self) -> ApiKeys | None:
        if self.api_keys_file:
            return ApiKeys.from_file(self.api_keys_file)
        if self.api_key:
            return ApiKeys.single(self.api_key)
        return None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert_file:
            if self.tls_client_ca_file:
                raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
            return None
        if not self.tls_key_file:
            raise ValueError("tls_cert_file needs tls_key_file")
        pair = (Path(self.tls_key_file).read_bytes(), Path(self.tls_cert_file).read_bytes())
        ca = Path(self.tls_client_ca_file).read_bytes() if self.tls_client_ca_file else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=ca, require_client_auth=ca is not None
        )


def channel_credentials(
    ca_file: str | None, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials | None:
    """Client TLS credentials (None = plaintext): trust `ca_file`, and present
    `cert_file`/`key_file` when the server wants mTLS."""
    if not ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes(),
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )
