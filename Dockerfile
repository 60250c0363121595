# Slim image running the API; the same image runs the worker (`omni-sales worker`) and the
# migrations (`omni-sales migrate`). External PostgreSQL and Redis come by URL (DATABASE_URL,
# REDIS_URL); without both, `serve` runs embedded mode with its data in OMNI_DATA_DIR (mount a
# volume there to keep it).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 omni
COPY --from=build /venv /venv
WORKDIR /srv
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 OMNI_DATA_DIR=/home/omni/.omni-sales
USER omni
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
CMD ["omni-sales", "serve", "--host", "0.0.0.0", "--port", "8000"]
