# Shared helpers for the service scripts in this folder; sourced, never run.
#
# Conventions every service script follows:
#   - `start` prints the service URL on stdout and nothing else; progress goes to stderr, so
#     `url=$(scripts/services/postgres start)` works.
#   - Services listen on 127.0.0.1 only, on fixed non-default ports, with a throwaway data
#     directory that `start` recreates and `stop` removes (logs are kept for post-mortems).
#   - State lives under $SERVICES_DIR (default: <repo>/.services, gitignored).
#   - Settings come from SERVICES_* variables, never VOEXEC_*: voexec reads every VOEXEC_*
#     variable as a setting and rejects the ones it does not know.
# shellcheck shell=bash

SERVICES_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVICES_SCRIPTS/../.." && pwd)"
SERVICES_DIR="${SERVICES_DIR:-$REPO_ROOT/.services}"
SERVICES_ENV_FILE="$SERVICES_DIR/env"
# Unprivileged account for servers that refuse to run as root (OpenSearch).
SERVICES_USER="${SERVICES_USER:-voexec-services}"
SERVICES_START_TIMEOUT="${SERVICES_START_TIMEOUT:-180}"

# Exit status of `status` and `url` when the service is not running (LSB "program is not running").
readonly NOT_RUNNING=3

say() { printf '%s: %s\n' "${SERVICE_NAME:-services}" "$*" >&2; }

die() {
  say "error: $*"
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as `user` when we are root; as ourselves otherwise (a developer's laptop).
run_as() {
  local user="$1"
  shift
  if is_root; then
    # setpriv execs (runuser forks), so `$!` of a backgrounded `run_as` is the server's pid.
    setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
  else
    "$@"
  fi
}

# Milliseconds since the epoch, for the timings we report.
now_ms() { date +%s%3N; }

elapsed_since() { # start_ms -> "1.234s"
  local ms=$(($(now_ms) - $1))
  printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}

# True when something accepts TCP connections on 127.0.0.1:port.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# Print the last lines of a log file to stderr, for failure messages.
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [ -f "$file" ]; then
    say "last $lines lines of $file:"
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
  else
    say "(no log file at $file)"
  fi
}

# Send a signal to pid and wait up to `timeout` seconds for it to exit; escalate to SIGKILL.
stop_pid() {
  local pid="$1" signal="$2" timeout="${3:-30}" waited=0
  pid_alive "$pid" || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  while pid_alive "$pid" && [ "$waited" -lt $((timeout * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if pid_alive "$pid"; then
    say "pid $pid did not stop within ${timeout}s after SIG$signal; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
}

# Install Debian packages (apt-get update first, once per process). Needs root or sudo.
APT_UPDATED=0
apt_install() {
  [ "$#" -gt 0 ] || return 0
  local sudo=()
  if ! is_root; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "missing Debian packages: $* (install them with: sudo apt-get install $*)"
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing packages $* and no apt-get here; install them by hand"
  local start log="$SERVICES_DIR/apt.log"
  start=$(now_ms)
  mkdir -p "$SERVICES_DIR"
  # dpkg's progress goes to a log, shown only when something fails.
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 -q update >"$log" 2>&1 || {
      show_log_tail "$log" 20
      die "apt-get update failed"
    }
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q \
    install -y --no-install-recommends "$@" >>"$log" 2>&1 || {
    show_log_tail "$log" 30
    die "apt-get install $* failed"
  }
  say "installed $* in $(elapsed_since "$start") (log: $log)"
}

# Create the unprivileged system account the servers run as (root only; idempotent).
ensure_service_user() {
  is_root || return 0
  id -u "$SERVICES_USER" >/dev/null 2>&1 && return 0
  say "creating system user $SERVICES_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$SERVICES_USER"
}

# A directory for a server's data that `user` can reach. Under the repository when every
# parent directory lets `user` through (the usual case), otherwise under /tmp, because a repo
# cloned inside a private home (mode 700) cannot be entered by the postgres account.
runtime_dir_for() {
  local user="$1" name="$2"
  local candidate="$SERVICES_DIR/$name"
  mkdir -p "$SERVICES_DIR"
  if ! is_root || run_as "$user" test -x "$SERVICES_DIR"; then
    printf '%s\n' "$candidate"
  else
    local key
    key=$(printf '%s' "$REPO_ROOT" | md5sum | cut -c1-10)
    printf '%s\n' "${TMPDIR:-/tmp}/voexec-services-$key/$name"
  fi
}

# Record `export NAME=value` in $SERVICES_ENV_FILE (replacing an older line for NAME), so that
# `source .services/env` gives the test suite the running services' URLs.
env_file_set() {
  local name="$1" value="$2" tmp
  mkdir -p "$SERVICES_DIR"
  tmp="$(mktemp "$SERVICES_DIR/.env.XXXXXX")"
  if [ -f "$SERVICES_ENV_FILE" ]; then
    grep -v "^export $name=" "$SERVICES_ENV_FILE" >"$tmp" || true
  fi
  printf 'export %s=%q\n' "$name" "$value" >>"$tmp"
  mv "$tmp" "$SERVICES_ENV_FILE"
}

env_file_unset() {
  local name="$1" tmp
  [ -f "$SERVICES_ENV_FILE" ] || return 0
  tmp="$(mktemp "$SERVICES_DIR/.env.XXXXXX")"
  grep -v "^export $name=" "$SERVICES_ENV_FILE" >"$tmp" || true
  if [ -s "$tmp" ]; then mv "$tmp" "$SERVICES_ENV_FILE"; else rm -f "$tmp" "$SERVICES_ENV_FILE"; fi
}

usage_and_exit() {
  cat >&2 <<EOF
usage: $0 start|stop|status|url|packages

  start     install if missing, start on 127.0.0.1 with a fresh data directory, wait until
            it answers, print its URL (already running: just print the URL)
  stop      stop it and remove its data directory (logs are kept under $SERVICES_DIR)
  status    print "running <url> (pid N)" and exit 0, or "stopped" and exit $NOT_RUNNING
  url       print its URL when running; exit $NOT_RUNNING otherwise
  packages  list the Debian packages it needs that are not installed (for ci-setup.sh)
EOF
  exit 2
}
