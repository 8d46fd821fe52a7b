# The shardcrawl worker image; docker-compose.yml builds it and scales it with --scale worker=N.
FROM python:3.11-slim

# No .pyc files baked into the layer; log lines reach `docker logs` as they are written.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /src
# Only what `pip install .` packages (see [tool.setuptools] in pyproject.toml), so edits to
# tests or docs don't invalidate the install layer. README.md is the project's `readme`.
COPY pyproject.toml README.md worker.py ./
COPY shardcrawl/ shardcrawl/
COPY workflows/ workflows/
COPY activities/ activities/
COPY spiders/ spiders/
RUN pip install --no-cache-dir .

# Run unprivileged: the worker parses untrusted web pages. The home directory is for
# anything Scrapy or boto3 may want to write; the worker itself needs no local files.
RUN useradd --create-home --uid 10001 shardcrawl
USER shardcrawl
WORKDIR /home/shardcrawl

# Exec form, so the worker is PID 1 and receives `docker stop`'s SIGTERM directly: it
# stops polling and finishes in-flight batches (worker.GRACEFUL_SHUTDOWN_SECONDS).
CMD ["shardcrawl", "worker"]
