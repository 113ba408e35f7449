# One image for every process of the platform; docker-compose.yml picks the process with
# `command: ["python", "-m", "<service>", "<role>"]`, so there is deliberately no CMD here.
# The portal's front-end packages (NHS.UK design system, htmx), from its package-lock.json.
FROM node:20-slim AS portal-assets
WORKDIR /portal
COPY services/portal/package.json services/portal/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim

# Same uv as scripts/bootstrap, so `--locked` judges uv.lock exactly as on a developer machine.
ARG UV_VERSION=0.13.9

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH="/app/.venv/bin:$PATH"

# /var/lib/issuer and /var/lib/audit: the issuer's and the audit checkpoints' signing keys (a
# named volume copies this owner and mode).
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}" \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin rx \
    && install -d -o rx -g rx -m 700 /var/lib/issuer /var/lib/audit

WORKDIR /app

# The whole workspace at once (uv.lock included): uv needs every member's pyproject.toml to
# check the lock, and copying them one by one would break the build whenever a member is added.
COPY . .
COPY --from=portal-assets /portal/node_modules services/portal/node_modules

# --locked: fail instead of silently re-resolving if uv.lock is stale. The cache mount keeps
# rebuilds after code edits from downloading every wheel again.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --all-packages --no-dev

# Root owns the code and the venv; the processes only write to /tmp (heartbeat files), the
# issuer to /var/lib/issuer and the audit relay to /var/lib/audit (development keys).
USER rx

EXPOSE 8000 8001 8002 8003 8004
