# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are built in a throw-away stage; the runtime image runs as non-root.
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
RUN groupadd --system bot && useradd --system --gid bot --home-dir /app --shell /usr/sbin/nologin bot
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=bot:bot flows ./flows
RUN mkdir -p /app/data && chown bot:bot /app/data
USER bot
VOLUME ["/app/data"]
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
