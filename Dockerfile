# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are built in a throw-away stage; the runtime image runs as a
# non-root user. Every start migrates the database first (Alembic; concurrent replicas take turns).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin bot
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 flows ./flows
RUN mkdir -p /app/data && chown 10001:10001 /app/data
USER 10001:10001
VOLUME ["/app/data"]
# 8080: the web chat (/chat) and the staff dashboard (and /healthz, which the health check asks); 8081: webhook
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HEALTH_PORT', os.environ.get('WEB_PORT', '8080')); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
