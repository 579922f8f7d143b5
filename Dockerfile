# One image, several commands: `messagehooks ingest|worker|sink|topics|...` (docker-compose.yml).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY messagehooks ./messagehooks
COPY features ./features
COPY ingest ./ingest
COPY streams ./streams
COPY dataset ./dataset
COPY devtools ./devtools
COPY cli ./cli
RUN pip install . \
    && useradd --create-home --uid 10001 messagehooks \
    && mkdir -p /data \
    && chown messagehooks /data

# Numeric, so a runtime that checks runAsNonRoot can see it is not root (hadolint DL3066).
USER 10001
ENV MESSAGEHOOKS_DATA_DIR=/data \
    MESSAGEHOOKS_HOST=0.0.0.0
EXPOSE 8000 9101 9102
ENTRYPOINT ["messagehooks"]
CMD ["ingest"]
