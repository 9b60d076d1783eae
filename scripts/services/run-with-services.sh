#!/usr/bin/env bash
# Run one command with every test service up, then stop them; exit with its status.
#
#   bash scripts/services/run-with-services.sh make test VOEXEC_REQUIRE_SERVICES=1
#
# Starts PostgreSQL, OpenSearch, a one-node Slurm cluster, DaCHS, the container registry and an
# S3 server (installing what is missing), exports VOEXEC_TEST_POSTGRES_URL,
# VOEXEC_TEST_OPENSEARCH_URL, SLURM_CONF, DACHS_TEST_OAI_URL, VOEXEC_TEST_S3_URL,
# VOEXEC_TEST_REGISTRY, VOEXEC_TEST_IMAGE(_DIGEST) and podman's
# CONTAINERS_* configuration for the command, and afterwards stops the services this script started. A service that was already running (`make services`) is used and left running.
set -uo pipefail
# shellcheck disable=SC2034 # read by say() in common.sh
SERVICE_NAME=run-with-services
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGUMENT...]" >&2
  exit 2
fi

started=()
# shellcheck disable=SC2317 # called by the EXIT trap
stop_started() {
  local index
  # Last started, first stopped: DaCHS before the PostgreSQL that holds its database.
  for ((index = ${#started[@]} - 1; index >= 0; index--)); do
    bash "$SERVICES_SCRIPTS/${started[index]}" stop || say "could not stop ${started[index]}"
  done
  started=()
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_service() { # service variable
  local service="$1" variable="$2" url
  bash "$SERVICES_SCRIPTS/$service" status >/dev/null 2>&1 || started+=("$service")
  url="$(bash "$SERVICES_SCRIPTS/$service" start)" || {
    say "$service did not start"
    exit 1
  }
  export "$variable=$url"
}

start_service postgres VOEXEC_TEST_POSTGRES_URL
start_service opensearch VOEXEC_TEST_OPENSEARCH_URL
start_service slurm SLURM_CONF
start_service dachs DACHS_TEST_OAI_URL # uses the PostgreSQL above; stopped before it
start_service containers VOEXEC_TEST_REGISTRY
start_service s3 VOEXEC_TEST_S3_URL
start_service rucio VOEXEC_TEST_RUCIO_URL # uses the PostgreSQL above; stopped before it
# The image's name and digest, and podman's private configuration, are in the env file.
eval "$(grep -E '^export (CONTAINERS_[A-Z_]+|VOEXEC_TEST_IMAGE(_DIGEST)?)=' "$SERVICES_ENV_FILE")"
say "VOEXEC_TEST_POSTGRES_URL=$VOEXEC_TEST_POSTGRES_URL"
say "VOEXEC_TEST_OPENSEARCH_URL=$VOEXEC_TEST_OPENSEARCH_URL"
say "SLURM_CONF=$SLURM_CONF"
say "DACHS_TEST_OAI_URL=$DACHS_TEST_OAI_URL"
say "VOEXEC_TEST_REGISTRY=$VOEXEC_TEST_REGISTRY (image $VOEXEC_TEST_IMAGE@$VOEXEC_TEST_IMAGE_DIGEST)"
say "VOEXEC_TEST_S3_URL=$VOEXEC_TEST_S3_URL"
say "VOEXEC_TEST_RUCIO_URL=$VOEXEC_TEST_RUCIO_URL"

status=0
"$@" || status=$?
exit "$status"
