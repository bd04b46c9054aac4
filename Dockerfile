# Marquee service image. Data is mounted (research licences forbid baking it in):
#   docker build -t marquee .
#   docker run -v /path/to/data:/data -e MARQUEE_DATA_DIR=/data -p 8000:8000 marquee
# Without a mounted folder the loader downloads MovieLens and verifies its checksums.
# Add -e MARQUEE_REDIS_URL=redis://<host>:6379/0 for the Redis feature store and event
# stream, and -e MARQUEE_API_KEYS=<your keys> before exposing the port.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MARQUEE_ARTIFACTS_DIR=/var/lib/marquee/artifacts \
    MARQUEE_CACHE_DIR=/var/lib/marquee/cache \
    MARQUEE_HOST=0.0.0.0

WORKDIR /app
# CPU-only torch keeps the image small; the project pins the version.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY app ./app
COPY catalog ./catalog
COPY features ./features
COPY retrieval ./retrieval
COPY ranking ./ranking
COPY llm ./llm
COPY evaluation ./evaluation
COPY ui ./ui
COPY prompts ./prompts
COPY bench ./bench
COPY config ./config
RUN pip install . && useradd --create-home marquee && mkdir -p /var/lib/marquee \
    && chown marquee /var/lib/marquee
USER marquee
EXPOSE 8000
CMD ["marquee", "up"]
