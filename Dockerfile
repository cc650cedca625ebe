# One image for the four Aidline services; docker-compose.yml picks the service with its command
# (`python -m services.<name>`, as `aidline run` and the Makefile start them).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned dependencies come from pyproject.toml; the project is installed as a package.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && useradd --create-home --uid 10001 aidline

USER aidline
# Listen on every interface inside the container; compose publishes the ports.
ENV HOST=0.0.0.0
EXPOSE 8001 8002 8003 8004

CMD ["python", "-m", "services.request"]
