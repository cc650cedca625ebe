# One image for the four Aidline services; docker-compose.yml picks the service with its command
# (`python -m services.<name>`, as `aidline run` and the Makefile start them).
#
# Two stages: `build` installs the locked runtime dependencies (requirements/run.txt, hashes
# checked) into a virtual environment, then the project; the final stage copies only that
# environment. The dependency layer comes before the code, so an edit rebuilds one small layer.
# The base is pinned to a patch release; pin its digest too where your registry policy asks.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/aidline
ENV PATH=/opt/aidline/bin:$PATH

COPY requirements/run.txt /tmp/run.txt
RUN pip install --require-hashes --no-deps -r /tmp/run.txt

COPY pyproject.toml README.md /src/
COPY shared /src/shared
COPY services /src/services
RUN pip install --no-deps /src

FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/aidline/bin:$PATH

COPY --from=build /opt/aidline /opt/aidline
RUN useradd --create-home --uid 10001 aidline
USER 10001
WORKDIR /home/aidline

# Listen on every interface inside the container; compose publishes the ports.
ENV HOST=0.0.0.0
EXPOSE 8001 8002 8003 8004

# Liveness of the default command (the request service on 8001); compose and the Helm chart
# probe each service on its own port. HEALTHCHECK_URL overrides it for `docker run` of another.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8001/healthz'), timeout=3)"]

CMD ["python", "-m", "services.request"]
