# One image for every Hiker service: `docker run hiker:dev ingress|conversation|sender|graph-mock`.
#
# It builds with BuildKit and with the classic builder (DOCKER_BUILDKIT=0) alike, without a
# registry for anything but the base: no `# syntax=` line (BuildKit would pull that frontend
# first) and no BuildKit-only flags (RUN --mount, COPY --chmod/--link, heredocs).
#
# The base is pinned by version (Python minor and Debian release) so a rebuild never jumps to a new
# interpreter; pin it further by digest (python:3.11-slim-bookworm@sha256:...) for releases.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A virtualenv is a self-contained tree that copies into the runtime stage as one layer.
# /opt/hiker/bot is HIKER_BOT_PATH: where an image `FROM hiker` copies its bot (deploy/bot/).
RUN python -m venv /opt/hiker && mkdir /opt/hiker/bot
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY services ./services
# constraints.txt pins every transitive dependency: the image runs exactly what CI tested.
# A non-editable install, so /src is not needed at run time.
RUN /opt/hiker/bin/pip install --no-compile -c constraints.txt . \
 && /opt/hiker/bin/python -m compileall -q /opt/hiker/lib

FROM ${PYTHON_IMAGE} AS runtime
# Bytecode is compiled at build time; the root filesystem is read-only at run time.
# Hiker listens on loopback by default (a developer's machine); a container's loopback reaches
# nobody, so the image listens on every interface of its own network namespace. Who may connect
# is the platform's to decide (published ports, NetworkPolicy), and the services refuse
# `make run`'s placeholder secrets on any listener that is not loopback.
ENV PATH=/opt/hiker/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HIKER_METRICS_HOST=0.0.0.0 \
    HIKER_HTTP_HOST=0.0.0.0 \
    HIKER_API_HOST=0.0.0.0 \
    HIKER_BOT_PATH=/opt/hiker/bot
# A fixed numeric uid/gid: Kubernetes can only verify runAsNonRoot against a numeric USER.
RUN groupadd --system --gid 10001 hiker \
 && useradd --system --uid 10001 --gid hiker --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin hiker
COPY --from=build /opt/hiker /opt/hiker
USER 10001:10001
# 8080 webhook (ingress), 8081 hiker api, 8090 Graph API stand-in (graph-mock), 9101-9105
# metrics and health.
EXPOSE 8080 8081 8090 9101 9102 9103 9104 9105
# Liveness for plain `docker run`; compose and Kubernetes use /readyz on the same port as well.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HIKER_METRICS_PORT', '9101'), timeout=2)"]
ENTRYPOINT ["hiker"]
CMD ["--help"]
