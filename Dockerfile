# Nexus gateway image: `docker build -t nexus-gateway .` then
# `docker run -p 8000:8000 -v ./nexus.toml:/etc/nexus/nexus.toml:ro nexus-gateway`.
# BASE may name another image with Python 3.11+ and pip as `python` and `pip` (e.g. one built
# from Debian's packages: scripts/build-base-image).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_OFFLINE_MODE=true \
    LITELLM_LOCAL_MODEL_COST_MAP=True

WORKDIR /opt/nexus
COPY pyproject.toml README.md constraints.txt ./
COPY nexus ./nexus
# The exact versions CI tested (constraints.txt, scripts/lock), with the OpenTelemetry exporter.
RUN pip install -c constraints.txt '.[tracing]' \
    && useradd --system --create-home --uid 10001 nexus \
    && mkdir -p /etc/nexus /var/lib/nexus \
    && chown nexus /var/lib/nexus \
    && cp nexus/example.toml /etc/nexus/nexus.toml

# The working directory holds what Nexus writes: nexus-usage.db, the spend a budget is judged on
# (docs/governance.md). Mount a volume there so that it survives the container.
WORKDIR /var/lib/nexus
VOLUME ["/var/lib/nexus"]
USER nexus
ENV NEXUS_CONFIG=/etc/nexus/nexus.toml \
    NEXUS_HOST=0.0.0.0 \
    NEXUS_PORT=8000
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["nexus"]
CMD ["serve"]
