# One image for every Python process of the system (services, worker pools, beat, Flower, migrate):
# docker-compose.yml picks the process with its `command`. Built from setup.cfg with `pip install .`,
# so the image holds exactly what the distribution declares.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the distribution's sources: never .env, .venv or var/ from the build machine.
WORKDIR /src
COPY setup.cfg pyproject.toml README.md celeryconfig.py ./
COPY api ./api
COPY common ./common
COPY gateway ./gateway
COPY models ./models
COPY tasks ./tasks
COPY workers ./workers
RUN pip install . && rm -rf /src

# Non-root; VAR_DIR (beat's schedule and pid lock) and LOG_DIR are the only writable places.
RUN useradd --create-home --uid 10001 cfmp \
    && mkdir -p /app/var /app/logs \
    && chown cfmp:cfmp /app/var /app/logs
WORKDIR /app
USER cfmp

CMD ["cfmp", "--help"]
