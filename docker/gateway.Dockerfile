# syntax=docker/dockerfile:1
#
# Search gateway (imgsearch.v1.SearchGateway on :50050, metrics on :9466) and
# the `imgsearch` CLI. No torch: the models are reached over gRPC
# (IMGSEARCH_EMBEDDER_ADDRESS, IMGSEARCH_CAPTIONER_ADDRESS) and the index lives
# on a Qdrant server (IMGSEARCH_QDRANT_URL).
#
#   docker build -f docker/gateway.Dockerfile -t imgsearch/gateway:0.1.0 .
#   docker run imgsearch/gateway:0.1.0                          # = imgsearch serve
#   docker run imgsearch/gateway:0.1.0 --gateway HOST:50050 stats   # the CLI as a client

# -- build: a virtual environment with the gateway extra only ---------------------
FROM python:3.12.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY imgsearch ./imgsearch
COPY search_gateway ./search_gateway
RUN pip install --no-cache-dir "./[gateway]" \
    && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the gateway image" >&2; exit 1; fi

# -- runtime ----------------------------------------------------------------------
FROM python:3.12.12-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IMGSEARCH_LOG_JSON=1 \
    IMGSEARCH_DATA_DIR=/data
RUN groupadd --gid 10001 imgsearch \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --shell /usr/sbin/nologin imgsearch \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
COPY docker/grpc_health_check.py /opt/imgsearch/grpc_health_check.py
WORKDIR /home/imgsearch
USER 10001:10001
EXPOSE 50050 9466
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/imgsearch/grpc_health_check.py", "127.0.0.1:50050", "imgsearch.v1.SearchGateway"]
ENTRYPOINT ["imgsearch"]
CMD ["serve"]
