# syntax=docker/dockerfile:1
# The tensorflow scoring-server image: the tekscore image plus the `tensorflow` extra
# (tensorflow-cpu). Serves TensorFlow SavedModels (docs/runtimes.md).
# Build after the tekscore image it starts from (charts/tekscore, build.steps of the
# scoring-server-tensorflow sub-chart):
#   docker build -f docker/tensorflow.Dockerfile --build-arg BASE_IMAGE=ghcr.io/tekscore/tekscore:0.1.0 \
#     -t ghcr.io/tekscore/tekscore-tensorflow:0.1.0 .

ARG BASE_IMAGE=ghcr.io/tekscore/tekscore:0.1.0
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tekscore-tensorflow" \
      org.opencontainers.image.description="tekscore scoring server for TensorFlow SavedModels"
USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The extra's requirements, read from the project's pyproject.toml (one source of truth).
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['optional-dependencies']['tensorflow']))" > /tmp/extra.txt \
    && /opt/tekscore/bin/pip install --no-cache-dir -r /tmp/extra.txt \
    && rm /tmp/extra.txt /tmp/pyproject.toml
USER 10001:10001
