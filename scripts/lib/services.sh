# shellcheck shell=bash
# Shared helpers for scripts/redis-up, upstash-rest-up, sqs-up, services-down.
# Sourced, not executed. Progress goes to stderr; stdout is reserved for the
# `export VAR=value` lines the *-up scripts print.

JOBLINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
JOBLINE_SCRIPTS="$JOBLINE_ROOT/scripts"
SCRIPT_NAME="$(basename "$0")"

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }

die() {
  log "error: $*"
  exit 1
}

# die_with_log LOGFILE MESSAGE...: fail, showing the tail of a service log.
die_with_log() {
  local logfile=$1
  shift
  log "error: $*"
  if [[ -s $logfile ]]; then
    printf -- '--- last 40 lines of %s ---\n' "$logfile" >&2
    tail -n 40 "$logfile" >&2
    printf -- '--- end of %s ---\n' "$logfile" >&2
  fi
  exit 1
}

# Run dir: ${JOBLINE_RUN_DIR:-<repo>/.run}, made absolute.
run_dir_init() {
  RUN_DIR="${JOBLINE_RUN_DIR:-$JOBLINE_ROOT/.run}"
  mkdir -p "$RUN_DIR" || die "cannot create run dir $RUN_DIR"
  RUN_DIR="$(cd "$RUN_DIR" && pwd)"
}

# take_lock NAME: exclusive lock on $RUN_DIR/NAME.lock held on fd 9 until the
# script exits. Background services must be started with `9>&-` so they do
# not inherit (and keep holding) the lock.
take_lock() {
  exec 9>"$RUN_DIR/$1.lock"
  flock -w 120 9 || die "timed out waiting for lock $RUN_DIR/$1.lock"
}

# read_pid FILE: the pid in FILE, or nothing.
read_pid() {
  [[ -f $1 ]] || return 0
  tr -dc '0-9' <"$1" || true
}

# pid_matches PID PATTERN: PID is alive and its command line contains PATTERN
# (guards against a stale pidfile whose pid was reused).
pid_matches() {
  local pid=$1 pattern=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# free_port: print a TCP port that is free on 127.0.0.1 right now.
free_port() {
  local p
  if command -v python3 >/dev/null 2>&1 &&
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null) &&
    [[ -n $p ]]; then
    echo "$p"
    return 0
  fi
  if command -v node >/dev/null 2>&1 &&
    p=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})' 2>/dev/null) &&
    [[ -n $p ]]; then
    echo "$p"
    return 0
  fi

  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "could not find a free TCP port"
}

# wait_for SECONDS CHECK...: poll CHECK (a command) until it succeeds or the
# deadline passes. Returns 1 on timeout, 2 if `WAIT_PID` is set and dies.
wait_for() {
  local secs=$1
  shift
  local deadline=$((SECONDS + secs))
  while true; do
    if "$@"; then return 0; fi
    if [[ -n ${WAIT_PID:-} ]] && ! kill -0 "$WAIT_PID" 2>/dev/null; then
      # One last check: the process may have exited right after answering.
      if "$@"; then return 0; fi
      return 2
    fi
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.05
  done
}

# stop_pid PID NAME: TERM, wait up to 10 s, then KILL.
stop_pid() {
  local pid=$1 name=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  if ! wait_for 10 eval "! kill -0 $pid 2>/dev/null"; then
    log "$name (pid $pid) did not stop after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 5 eval "! kill -0 $pid 2>/dev/null" || true
  fi
}

# emit_env FILE NAME=VALUE...: write FILE (plain NAME=VALUE lines) and print
# `export NAME=VALUE` lines on stdout (values shell-quoted when needed).
emit_env() {
  local file=$1
  shift
  local kv
  : >"$file.tmp"
  for kv in "$@"; do
    printf '%s\n' "$kv" >>"$file.tmp"
  done
  mv -f "$file.tmp" "$file"
  print_env "$file"
}

# print_env FILE: print FILE's NAME=VALUE lines as `export NAME=VALUE`.
print_env() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == *=* ]] || continue
    printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
  done <"$1"
}

# env_value FILE NAME: the value of NAME in an env file, or nothing.
env_value() {
  [[ -f $1 ]] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# as_root CMD...: run CMD as root (directly, or via non-interactive sudo).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root to run: $*"
  fi
}

# apt_install PACKAGE...: quiet, non-interactive apt-get install; runs
# `apt-get update` and retries once if the first attempt fails (empty or
# stale package lists).
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
  local aptlog="$RUN_DIR/apt.log"
  log "installing $* with apt-get (log: $aptlog)"
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 -qq)
  if as_root "${apt[@]}" install -y --no-install-recommends "$@" >"$aptlog" 2>&1; then
    return 0
  fi
  log "apt-get install failed; running apt-get update and retrying"
  as_root "${apt[@]}" update >>"$aptlog" 2>&1 || die_with_log "$aptlog" "apt-get update failed"
  as_root "${apt[@]}" install -y --no-install-recommends "$@" >>"$aptlog" 2>&1 ||
    die_with_log "$aptlog" "apt-get install $* failed"
}

# The Python test tools (moto, schemathesis: scripts/requirements-test.txt)
# in <repo>/.venv, created when missing, reinstalled when the requirements
# change. Sets VENV.
VENV="$JOBLINE_ROOT/.venv"
ensure_test_venv() {
  local python="${JOBLINE_PYTHON:-python3}" reqs="$JOBLINE_SCRIPTS/requirements-test.txt"
  if [[ ! -x $VENV/bin/python ]]; then
    command -v "$python" >/dev/null 2>&1 || die "$python not found (set JOBLINE_PYTHON)"
    log "creating Python venv at $VENV"
    if ! "$python" -m venv "$VENV" >&2 9>&-; then
      # Debian's system python needs the python3-venv package for this.
      rm -rf "$VENV"
      apt_install python3-venv
      "$python" -m venv "$VENV" >&2 9>&- || die "could not create a venv at $VENV"
    fi
  fi
  local stamp="$VENV/.jobline-requirements-test.sha256" want_sha
  want_sha="$(sha256sum "$reqs" | cut -d' ' -f1)"
  if [[ $(cat "$stamp" 2>/dev/null || true) != "$want_sha" ]]; then
    log "installing $(grep -v '^#' "$reqs" | xargs) into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$reqs" </dev/null >&2 9>&- ||
      die "pip install -r $reqs failed"
    echo "$want_sha" >"$stamp"
  fi
}
