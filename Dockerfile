# syntax=docker/dockerfile:1
# One image for every refstack process: the API (default CMD), migrations (`alembic upgrade head`) and the
# payment simulator (`python -m simulators.payments ...`). See notes/docker.md for why each line is where it is.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- builder: resolve nothing, install exactly what uv.lock says -------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, code later: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# --- runtime: the interpreter, the venv and our code; no uv, no compilers, no root --------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 refstack \
 && useradd --system --uid 10001 --gid refstack --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin refstack
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8000/health/live
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY alembic.ini ./
COPY migrations ./migrations
COPY simulators ./simulators
COPY app ./app
USER 10001:10001
EXPOSE 8000
# Liveness of this container only: /health/live calls no dependency. slim has no curl, so use urllib.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
# Labels last: a new VERSION or REVISION changes metadata only, never a cached layer above.
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="refstack" \
      org.opencontainers.image.description="Flash-sale ticketing reference backend: API, migrations, payment simulator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# Exec form: uvicorn itself gets `docker stop`'s SIGTERM. The shell form can leave /bin/sh as PID 1, which does
# not pass the signal on, so the stop would end in SIGKILL after the grace period.
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--timeout-keep-alive", "75"]
