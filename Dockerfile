# syntax=docker/dockerfile:1
# The gpt2bot image: `gpt2bot run` as a non-root user, data and models on volumes.
#
#   docker build -t gpt2bot .                          CPU (PyTorch's CPU wheels, ~1 GB smaller)
#   docker build -t gpt2bot:cuda --build-arg VARIANT=cuda .   NVIDIA GPUs (PyPI's CUDA wheels;
#                                                      run with --gpus all)
#
# Nothing is downloaded or trained at build time: the first start prepares the model (BASE_MODEL
# from the hub into the models volume, or the offline bootstrap model, trained there once).
# docs/operating.md has the whole story; compose.yaml runs it.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gpt2bot
ENV PATH=/opt/gpt2bot/bin:$PATH
# torch first and pinned (a bare resolve would pick whatever build it finds)
RUN case "$VARIANT" in \
      cpu) pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_CPU_INDEX" ;; \
      cuda) pip install "torch==${TORCH_VERSION}" ;; \
      *) echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1 ;; \
    esac
COPY pyproject.toml README.md /src/
COPY bot /src/bot
COPY model /src/model
COPY storage /src/storage
COPY admin /src/admin
RUN pip install "/src[slack,postgres]"

FROM python:${PYTHON_VERSION}-slim-bookworm
ARG VARIANT=cpu
# The CPU image compiles gpt2bot's decode-attention kernel on its first start (a C++ compiler
# and ninja, ~6 s; model/engine/native), cached on the models volume. Without them the engine
# still runs, on torch's slower attention (ENGINE_CPU_NATIVE_ATTENTION in .env.example).
RUN if [ "$VARIANT" = cpu ]; then \
      apt-get update && apt-get install -y --no-install-recommends g++ ninja-build \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /opt/gpt2bot /opt/gpt2bot
# The defaults (./data, ./models, ./data/admin_token) resolve under /srv/gpt2bot: no path
# settings needed. HEALTH_PORT serves /healthz, /readyz and /metrics for every platform.
ENV PATH=/opt/gpt2bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/srv/gpt2bot/models/.cache/huggingface \
    TORCH_EXTENSIONS_DIR=/srv/gpt2bot/models/.cache/torch_extensions \
    MPLCONFIGDIR=/tmp/matplotlib \
    HEALTH_PORT=8081 \
    HEALTH_HOST=0.0.0.0
RUN useradd --system --uid 10001 --user-group --home-dir /srv/gpt2bot --no-create-home gpt2bot \
    && mkdir -p /srv/gpt2bot/data /srv/gpt2bot/models \
    && chown -R gpt2bot:gpt2bot /srv/gpt2bot
USER gpt2bot
WORKDIR /srv/gpt2bot
VOLUME ["/srv/gpt2bot/data", "/srv/gpt2bot/models"]
EXPOSE 8080 8081
# ready = database answers, model loaded, Discord/Slack connected; a first start that trains
# the bootstrap model takes a few minutes on a small CPU, hence the long start period
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 CMD ["gpt2bot", "health"]
ENTRYPOINT ["gpt2bot"]
CMD ["run", "--host", "0.0.0.0", "--port", "8080"]
