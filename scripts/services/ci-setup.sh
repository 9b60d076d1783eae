#!/usr/bin/env bash
# Prepare a fresh CI machine (Debian 12, root) for the whole test suite, then start the services.
#
#   bash scripts/services/ci-setup.sh          install what is missing, start PostgreSQL,
#                                               OpenSearch, Slurm, DaCHS, the container
#                                               registry, S3 (moto) and Rucio, write
#                                               .services/env
#   bash scripts/services/ci-setup.sh stop     stop them and remove .services/env
#
# `.ci/run` calls it and then sources .services/env, which holds
#   export VOEXEC_TEST_POSTGRES_URL=...
#   export VOEXEC_TEST_OPENSEARCH_URL=...
# Debian packages come from apt (one `apt-get update`, one `apt-get install`, only when something
# is missing): what the service scripts report missing (postgresql-15, a JDK, Maven, ...) and
# Debian's Chromium for the browser tests. OpenSearch itself comes from Maven Central, cached
# under .services/opensearch-dist. Set SERVICES_SKIP_CHROMIUM=1 to leave Chromium out.
set -euo pipefail
# shellcheck disable=SC2034 # read by say() in common.sh
SERVICE_NAME=ci-setup
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cmd_stop() {
  local status=0
  bash "$SERVICES_SCRIPTS/rucio" stop || status=1 # before PostgreSQL, which holds its database
  bash "$SERVICES_SCRIPTS/s3" stop || status=1
  bash "$SERVICES_SCRIPTS/containers" stop || status=1
  bash "$SERVICES_SCRIPTS/opensearch" stop || status=1
  bash "$SERVICES_SCRIPTS/slurm" stop || status=1
  bash "$SERVICES_SCRIPTS/dachs" stop || status=1 # before PostgreSQL, which holds its database
  bash "$SERVICES_SCRIPTS/postgres" stop || status=1
  rm -f "$SERVICES_ENV_FILE"
  return "$status"
}

# Debian packages still needed, without repeats.
missing_packages() {
  {
    bash "$SERVICES_SCRIPTS/postgres" packages
    bash "$SERVICES_SCRIPTS/opensearch" packages
    bash "$SERVICES_SCRIPTS/slurm" packages
    bash "$SERVICES_SCRIPTS/dachs" packages
    bash "$SERVICES_SCRIPTS/containers" packages
    bash "$SERVICES_SCRIPTS/s3" packages
    bash "$SERVICES_SCRIPTS/rucio" packages
    if [ "${SERVICES_SKIP_CHROMIUM:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
      # fonts-liberation: metric-compatible Arial/Times/Courier, so screenshots look as in a
      # desktop browser (it is only a recommendation of the chromium package).
      printf '%s\n' chromium fonts-liberation
    fi
  } | awk 'NF && !seen[$0]++'
}

cmd_start() {
  local total step missing postgres_url opensearch_url
  total=$(now_ms)

  step=$(now_ms)
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  else
    say "every package needed is installed"
  fi
  say "packages: $(elapsed_since "$step")"

  # Both services start at once: OpenSearch's JVM start-up is the long pole, and PostgreSQL
  # is ready well within it.
  step=$(now_ms)
  local postgres_out="$SERVICES_DIR/.postgres-url" opensearch_out="$SERVICES_DIR/.opensearch-url"
  mkdir -p "$SERVICES_DIR"
  bash "$SERVICES_SCRIPTS/opensearch" start >"$opensearch_out" &
  local opensearch_job=$!
  local failed=""
  bash "$SERVICES_SCRIPTS/postgres" start >"$postgres_out" || failed="PostgreSQL"
  wait "$opensearch_job" || failed="${failed:+$failed and }OpenSearch"
  if [ -n "$failed" ]; then
    # Leave nothing running behind a failed set-up.
    cmd_stop >/dev/null 2>&1 || true
    die "$failed did not start (see the messages above)"
  fi
  postgres_url="$(cat "$postgres_out")"
  opensearch_url="$(cat "$opensearch_out")"
  rm -f "$postgres_out" "$opensearch_out"
  say "services: $(elapsed_since "$step")"

  # Written whole, so that the file names exactly the services this run started.
  {
    printf 'export VOEXEC_TEST_POSTGRES_URL=%q\n' "$postgres_url"
    printf 'export VOEXEC_TEST_OPENSEARCH_URL=%q\n' "$opensearch_url"
  } >"$SERVICES_ENV_FILE"
  say "PostgreSQL: $postgres_url"
  say "OpenSearch: $opensearch_url"
  # Rucio (its own venv, its schema in the PostgreSQL above) installs and starts meanwhile; its
  # line is written below, once the other services have written theirs.
  local rucio_out="$SERVICES_DIR/.rucio-url"
  SERVICES_RUCIO_WRITE_ENV=0 bash "$SERVICES_SCRIPTS/rucio" start >"$rucio_out" &
  local rucio_job=$!
  # Slurm (a one-node cluster on loopback) adds its SLURM_CONF line to the file.
  bash "$SERVICES_SCRIPTS/slurm" start >/dev/null || die "Slurm did not start"
  # DaCHS (a throwaway OAI-PMH registry in the PostgreSQL above) adds its own line to the file.
  bash "$SERVICES_SCRIPTS/dachs" start >/dev/null || die "DaCHS did not start"
  # Podman's private configuration, the loopback registry and the test image's digest.
  bash "$SERVICES_SCRIPTS/containers" start >/dev/null || die "the container registry did not start"
  # moto's S3 server (its own venv under .services/s3) adds VOEXEC_TEST_S3_URL to the file.
  bash "$SERVICES_SCRIPTS/s3" start >/dev/null || die "the S3 server did not start"
  # The Rucio server (.services/rucio) adds VOEXEC_TEST_RUCIO_URL to the file.
  wait "$rucio_job" || die "the Rucio server did not start"
  env_file_set VOEXEC_TEST_RUCIO_URL "$(cat "$rucio_out")"
  rm -f "$rucio_out"
  say "wrote $SERVICES_ENV_FILE; total $(elapsed_since "$total")"
}

case "${1:-start}" in
start) cmd_start ;;
stop) cmd_stop ;;
*)
  echo "usage: $0 [start|stop]" >&2
  exit 2
  ;;
esac
