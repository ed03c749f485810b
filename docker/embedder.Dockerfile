# syntax=docker/dockerfile:1
#
# CLIP embedder service (imgsearch.v1.Embedder on :50051, metrics on :9464).
#
#   docker build -f docker/embedder.Dockerfile -t imgsearch/embedder:0.1.0-cpu .
#   docker build -f docker/embedder.Dockerfile --build-arg DEVICE=cuda -t imgsearch/embedder:0.1.0-cuda .
#   docker build -f docker/embedder.Dockerfile --target baked -t imgsearch/embedder:0.1.0-cpu-baked .
#
# DEVICE=cpu  : python slim image, torch from the PyTorch CPU wheel index (no CUDA libraries).
# DEVICE=cuda : NVIDIA CUDA base image, torch's CUDA build from PyPI.
# Weights are not in the image: they download on first start into HF_HOME
# (/cache/huggingface, mount a volume there). The `baked` target downloads
# them at build time instead, for air-gapped clusters (see deploy/README.md).
ARG DEVICE=cpu

# -- operating system + Python, one per device ------------------------------------
FROM python:3.12.12-slim-bookworm AS os-cpu

FROM nvidia/cuda:12.8.1-base-ubuntu24.04 AS os-cuda
# Ubuntu's security updates replace package versions in place, so exact apt
# pins would break rebuilds; the CUDA base image tag is the pinned part.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python

# -- build: a virtual environment with torch and the service ----------------------
# os-${DEVICE} names a stage above, which hadolint takes for an untagged image.
# hadolint ignore=DL3006
FROM os-${DEVICE} AS build
ARG DEVICE
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# Empty: the PyTorch CPU wheel index for DEVICE=cpu, PyPI (CUDA build) otherwise.
ARG TORCH_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the device's index, so the project install below finds it
# satisfied and never pulls PyPI's (CUDA, several GB) build into a CPU image.
RUN index="${TORCH_INDEX_URL}" \
    && if [ -z "$index" ] && [ "${DEVICE}" = cpu ]; then index=https://download.pytorch.org/whl/cpu; fi \
    && pip install --no-cache-dir --index-url "${index:-https://pypi.org/simple}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY imgsearch ./imgsearch
COPY offline_models ./offline_models
COPY embedder_service ./embedder_service
RUN pip install --no-cache-dir "./[embedder]"

# -- runtime: the venv, a non-root user, nothing else -----------------------------
# hadolint ignore=DL3006
FROM os-${DEVICE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache \
    IMGSEARCH_LOG_JSON=1
RUN groupadd --gid 10001 imgsearch \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --shell /usr/sbin/nologin imgsearch \
    && mkdir -p /cache/huggingface /cache/torch \
    && chown -R 10001:10001 /cache
COPY --from=build /opt/venv /opt/venv
COPY docker/grpc_health_check.py /opt/imgsearch/grpc_health_check.py
WORKDIR /home/imgsearch
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "/opt/imgsearch/grpc_health_check.py", "127.0.0.1:50051", "imgsearch.v1.Embedder"]
ENTRYPOINT ["imgsearch-embedder"]

# -- baked: weights inside the image (air-gapped clusters) ------------------------
FROM runtime AS baked
ARG EMBEDDER_MODEL=ViT-B-32
ARG EMBEDDER_PRETRAINED=laion2b_s34b_b79k
USER 0:0
# Loads the model once with the service's own loader, so exactly the files it
# needs land in the cache; outside /cache so a cache volume cannot hide them.
ENV HF_HOME=/opt/imgsearch/hf TORCH_HOME=/opt/imgsearch/torch
RUN python -c "import sys; from embedder_service.model import ClipEmbedder; ClipEmbedder(sys.argv[1], sys.argv[2], device='cpu').load()" \
        "${EMBEDDER_MODEL}" "${EMBEDDER_PRETRAINED}" \
    && mkdir -p /opt/imgsearch/torch \
    && chmod -R a+rX /opt/imgsearch
ENV HF_HUB_OFFLINE=1 \
    IMGSEARCH_EMBEDDER_MODEL=${EMBEDDER_MODEL} \
    IMGSEARCH_EMBEDDER_PRETRAINED=${EMBEDDER_PRETRAINED}
USER 10001:10001

# -- default target ---------------------------------------------------------------
FROM runtime AS final
