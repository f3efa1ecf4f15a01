# The one image of Weave-NN: every service is `weavenn <command>`, e.g.
#   docker run IMAGE serve task-service --host 0.0.0.0 --port 8003
#   docker run IMAGE consume mcp-sync
# Build from the top of a checkout: `weavenn compose up --build`, or
#   docker build -t weave-nn/weavenn:0.1.0 .   (the tag the rendered manifests use by default)

# -- build the wheel (templates and migrations are inside it) ------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY weavenn_cli ./weavenn_cli
COPY templates ./templates
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# -- the runtime: the wheel and its dependencies, nothing else -----------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# git: the git service and the auto-commit consumer run it on the vault.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl && rm -rf /tmp/dist
# A fixed non-root user; group 0 may write the data folder so `docker run --user UID:0`
# (compose's WEAVENN_UID, OpenShift's random ids) works on the same volumes.
RUN useradd --uid 10001 --gid 0 --home-dir /app --no-create-home --shell /usr/sbin/nologin weavenn \
    && mkdir -p /app/data /vault \
    && chown 10001:0 /app /app/data /vault \
    && chmod 0775 /app /app/data /vault
WORKDIR /app
USER 10001
EXPOSE 8000 8001 8002 8003 8080 9100
ENTRYPOINT ["weavenn"]
CMD ["--help"]
