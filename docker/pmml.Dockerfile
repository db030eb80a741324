# syntax=docker/dockerfile:1
# The pmml scoring-server image: the tekscore image plus Java 17 (Debian openjdk-17-jre-headless)
# and the `pmml` extra (jpmml-evaluator, JPype). Serves PMML models (docs/runtimes.md).
# Build after the tekscore image it starts from (charts/tekscore, build.steps of the
# scoring-server-pmml sub-chart):
#   docker build -f docker/pmml.Dockerfile --build-arg BASE_IMAGE=ghcr.io/tekscore/tekscore:0.1.0 \
#     -t ghcr.io/tekscore/tekscore-pmml:0.1.0 .

ARG BASE_IMAGE=ghcr.io/tekscore/tekscore:0.1.0
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tekscore-pmml" \
      org.opencontainers.image.description="tekscore scoring server for PMML models (JPMML on Java 17)"
USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's JRE follows its security updates: the version is the distribution's, not pinned here.
# The slim image has no man folder, which the JRE's alternatives expect.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && java -version
# The extra's requirements, read from the project's pyproject.toml (one source of truth).
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['optional-dependencies']['pmml']))" > /tmp/extra.txt \
    && /opt/tekscore/bin/pip install --no-cache-dir -r /tmp/extra.txt \
    && rm /tmp/extra.txt /tmp/pyproject.toml
USER 10001:10001
