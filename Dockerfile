# voexec's image for docker-compose.yml: the package and its console script, nothing else.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /src
# The packages listed in pyproject.toml's [tool.setuptools.packages.find]; copied one by one so
# that local state (.venv, .services, var) never ends up in the image.
COPY pyproject.toml README.md ./
COPY core/ core/
COPY vocabularies/ vocabularies/
COPY catalogue/ catalogue/
COPY harvest/ harvest/
COPY broker/ broker/
COPY voexec/ voexec/
RUN pip install . && rm -rf /src

RUN useradd --system --create-home --home-dir /var/lib/voexec voexec
USER voexec
WORKDIR /var/lib/voexec
ENV VOEXEC_DATA_DIR=/var/lib/voexec

EXPOSE 8000
CMD ["voexec", "serve", "--host", "0.0.0.0"]
