# voexec's image for docker-compose.yml: the package, its locked dependencies and its console
# script, nothing else.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/voexec \
    PATH=/opt/voexec/bin:$PATH

WORKDIR /src
# uv at the version pyproject.toml pins ([tool.uv] required-version), then exactly uv.lock
# (--locked also fails the build if the lock does not match pyproject.toml). The dependencies are
# one layer of their own, so a change to the code alone does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN pip install "uv$(sed -n 's/^required-version = "\(.*\)"$/\1/p' pyproject.toml)" \
 && uv sync --locked --no-install-project
# The packages listed in pyproject.toml's [tool.setuptools.packages.find]; copied one by one so
# that local state (.venv, .services, var) never ends up in the image.
COPY core/ core/
COPY vocabularies/ vocabularies/
COPY catalogue/ catalogue/
COPY harvest/ harvest/
COPY broker/ broker/
COPY voexec/ voexec/
# --no-editable: voexec is installed into /opt/voexec itself, so /src (and uv) can go.
RUN uv sync --locked --no-editable \
 && pip uninstall --yes uv \
 && rm -rf /src

RUN useradd --system --create-home --home-dir /var/lib/voexec voexec
USER voexec
WORKDIR /var/lib/voexec
ENV VOEXEC_DATA_DIR=/var/lib/voexec

EXPOSE 8000
CMD ["voexec", "serve", "--host", "0.0.0.0"]
