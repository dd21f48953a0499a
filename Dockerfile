# syntax=docker/dockerfile:1
# The milvus-coredump-agent image: the node sensor, the cluster worker, the Prefect server and the CLI.
#
#   docker build -t milvus-coredump-agent:0.1.0 .
#
# Three stages: the project is installed by scripts/setup.sh exactly as on a developer machine (it also
# installs gcc, which stays in the build stage); helm and kubectl are downloaded and checked against
# pinned sha256 sums; the final image has Python 3.11, gdb, zstd, lz4, xz, the two tools and /app.
# Changing HELM_VERSION or KUBECTL_VERSION needs the new sums too (the build fails on a mismatch):
# helm's release page lists them, and kubectl's are at https://dl.k8s.io/release/v<version>/bin/linux/<arch>/kubectl.sha256.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /app
COPY pyproject.toml README.md prefect.yaml ./
COPY scripts/ scripts/
COPY configs/ configs/
COPY coredumps/ coredumps/
COPY coredump_agent/ coredump_agent/
COPY flows/ flows/
COPY tasks/ tasks/
COPY node_sensor/ node_sensor/
RUN bash scripts/setup.sh

FROM ${PYTHON_IMAGE} AS tools
ARG TARGETARCH
ARG KUBECTL_VERSION=1.32.4
ARG KUBECTL_SHA256_AMD64=10d739e9af8a59c9e7a730a2445916e04bc9cbb44bc79d22ce460cd329fa076c
ARG KUBECTL_SHA256_ARM64=c6f96d0468d6976224f5f0d81b65e1a63b47195022646be83e49d38389d572c2
ARG HELM_VERSION=3.15.2
ARG HELM_SHA256_AMD64=2694b91c3e501cff57caf650e639604a274645f61af2ea4d601677b746b44fe2
ARG HELM_SHA256_ARM64=adcf07b08484b52508e5cbc8b5f4b0b0db50342f7bc487ecd88b8948b680e6a7
RUN set -eux; \
    arch="${TARGETARCH:-amd64}"; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl; \
    case "${arch}" in \
      amd64) kubectl_sha="${KUBECTL_SHA256_AMD64}"; helm_sha="${HELM_SHA256_AMD64}" ;; \
      arm64) kubectl_sha="${KUBECTL_SHA256_ARM64}"; helm_sha="${HELM_SHA256_ARM64}" ;; \
      *) echo "unsupported architecture ${arch}" >&2; exit 1 ;; \
    esac; \
    curl -fsSLo /tmp/kubectl "https://dl.k8s.io/release/v${KUBECTL_VERSION}/bin/linux/${arch}/kubectl"; \
    echo "${kubectl_sha}  /tmp/kubectl" | sha256sum -c -; \
    curl -fsSLo /tmp/helm.tar.gz "https://get.helm.sh/helm-v${HELM_VERSION}-linux-${arch}.tar.gz"; \
    echo "${helm_sha}  /tmp/helm.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tar.gz -C /tmp; \
    install -m 0755 /tmp/kubectl /usr/local/bin/kubectl; \
    install -m 0755 "/tmp/linux-${arch}/helm" /usr/local/bin/helm

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="milvus-coredump-agent" \
      org.opencontainers.image.description="Catches, analyses, scores and stores the coredumps of crashed Milvus processes, on Prefect 3."
RUN set -eux; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gdb zstd lz4 xz-utils ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 10001 coredump; \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin coredump
COPY --from=tools /usr/local/bin/kubectl /usr/local/bin/helm /usr/local/bin/
COPY --from=build /app /app
RUN set -eux; \
    install -d -o 10001 -g 10001 -m 0750 /app/data; \
    /app/.venv/bin/coredump-agent --help >/dev/null; \
    gdb --version >/dev/null; helm version --short; kubectl version --client
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    HOME=/tmp \
    PREFECT_HOME=/tmp/prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Non-root, no capabilities needed: the sensor reads root-owned cores through the folder's group (the
# DaemonSet adds group 0 as a supplementary group; see deploy/README.md).
USER 10001:10001
ENTRYPOINT ["/app/.venv/bin/coredump-agent"]
CMD ["--help"]
