#!/usr/bin/env bash
# The AWS side of brfed's local world: moto-based emulator (emulator.py) on 127.0.0.1:15000 and the
# Lambda runtime-API host (`cargo lambda watch`) on 127.0.0.1:19000.
#
#   infra/local/aws.sh start     # build the function binaries, start both, wait until both answer
#   infra/local/aws.sh stop      # stop both and every process they started (also after a crash)
#   infra/local/aws.sh restart
#   infra/local/aws.sh status    # exit 0 when both run and answer
#   eval "$(infra/local/aws.sh env)"   # AWS_ENDPOINT_URL, region, credentials, BRFED_* (+ deployed.env)
#
# Settings (environment):
#   BRFED_WORLD_DIR   world dir (default <repo>/.world); logs in $WORLD/logs, pids in $WORLD/aws
#   BRFED_CACHE       cache dir (default ~/.cache/brfed): venv, CARGO_TARGET_DIR default
#   CARGO_TARGET_DIR  default $BRFED_CACHE/target (shared by everyone: keep it)
#   BRFED_LAMBDA_MODE spawn (default): the emulator starts the prebuilt binaries of
#                     $CARGO_TARGET_DIR/debug itself, on demand; the host runs --only-lambda-apis.
#                     watch: `cargo lambda watch` runs them with `cargo run` (slower, see README).
#   BRFED_LAMBDA_MAX_CONCURRENCY  instances per function (default 4)
#   BRFED_SKIP_BUILD=1  do not run `cargo build` for the function crates on start
#   Function environment: $WORLD/functions.env (KEY=VALUE lines, re-read at each instance start)
#   and the function configuration's Environment (deploy.py / UpdateFunctionConfiguration).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
world="${BRFED_WORLD_DIR:-$repo/.world}"
cache="${BRFED_CACHE:-$HOME/.cache/brfed}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
piddir="$world/aws"
logdir="$world/logs"
emu_host=127.0.0.1 emu_port=15000
rt_host=127.0.0.1 rt_port=19000
mode="${BRFED_LAMBDA_MODE:-spawn}"
maxc="${BRFED_LAMBDA_MAX_CONCURRENCY:-4}"
components=(emulator lambda-host)

log() { echo "aws.sh: $*" >&2; }

print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL=http://$emu_host:$emu_port
export AWS_REGION=us-west-2
export AWS_DEFAULT_REGION=us-west-2
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export BRFED_BUCKET=brfed-backups
EOF
  if [[ -f "$world/deployed.env" ]]; then cat "$world/deployed.env"; fi
}

# Every process of the session a component was started in (setsid): the component, its
# children and grandchildren, even re-parented ones after a crash.
session_pids() {
  local sid="$1"
  ps -e -o pid=,sid=,stat= | awk -v s="$sid" '$2 == s && $3 !~ /^Z/ { print $1 }'
}

# Every process started for this world carries BRFED_AWS_TOKEN=<token of $piddir/token> in its
# environment (function binaries included: spawned by the emulator or by `cargo lambda watch`,
# which puts its children in sessions of their own).
marked_pids() {
  local token f
  [[ -f "$piddir/token" ]] || return 0
  token="$(<"$piddir/token")"
  { grep -lzx "BRFED_AWS_TOKEN=$token" /proc/[0-9]*/environ 2>/dev/null || true; } \
    | sed -n 's#^/proc/\([0-9]*\)/environ$#\1#p' | while read -r f; do
        # skip zombies and ourselves
        [[ "$f" == "$$" || "$f" == "$BASHPID" ]] && continue
        [[ "$(awk '{print $3}' "/proc/$f/stat" 2>/dev/null)" == Z ]] && continue
        echo "$f"
      done
}

pid_of() {
  local f="$piddir/$1.pid"
  [[ -f "$f" ]] && cat "$f" || true
}

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

emulator_answers() { curl -fsS -m 2 "http://$emu_host:$emu_port/_brfed/health" >/dev/null 2>&1; }

# Stops every component at once: TERM to all their processes, then KILL what is left after 5 s.
cmd_stop() {
  local c pid pids sids=() all
  # signal SIG to the pids in $2, if any
  send() { if [[ -n "$2" ]]; then kill "-$1" $2 2>/dev/null || true; fi; }
  for c in "${components[@]}"; do
    pid="$(pid_of "$c")"
    [[ -n "$pid" ]] || continue
    sids+=("$pid")
    pids="$(session_pids "$pid")"
    if [[ -n "$pids" ]]; then log "stopping $c (session $pid: $(echo $pids))"; fi
    send TERM "$pids"
  done
  send TERM "$(marked_pids)"
  all_pids() { local s; for s in "${sids[@]}"; do session_pids "$s"; done; marked_pids; }
  # up to 5 s for them to go
  gone() { local _; for _ in $(seq 50); do [[ -z "$(all_pids)" ]] && return; sleep 0.1; done; }
  gone
  all="$(all_pids)"
  if [[ -n "$all" ]]; then
    log "killing leftovers: $(echo $all)"
    send KILL "$all"
    gone
  fi
  all="$(all_pids)"
  if [[ -n "$all" ]]; then
    log "could not stop: $(echo $all)"
    return 1
  fi
  for c in "${components[@]}"; do rm -f "$piddir/$c.pid"; done
  rm -f "$piddir/token"
}

function_packages() {
  local d
  for d in "$repo"/functions/*/ "$repo"/tests/smoke-fn/; do
    [[ -f "$d/src/main.rs" && -f "$d/Cargo.toml" ]] || continue
    sed -n 's/^name *= *"\(.*\)"/\1/p' "$d/Cargo.toml" | head -1
  done
}

cmd_status() {
  local ok=0 pid
  pid="$(pid_of emulator)"
  if alive "$pid" && emulator_answers; then
    echo "emulator: running (pid $pid) on http://$emu_host:$emu_port"
  else
    echo "emulator: not running"; ok=1
  fi
  pid="$(pid_of lambda-host)"
  if alive "$pid" && port_open "$rt_host" "$rt_port"; then
    echo "lambda-host: running (pid $pid) on http://$rt_host:$rt_port"
  else
    echo "lambda-host: not running"; ok=1
  fi
  if [[ $ok == 0 ]]; then
    curl -fsS -m 2 "http://$emu_host:$emu_port/_brfed/functions" 2>/dev/null || true
    echo
  fi
  return $ok
}

cmd_start() {
  local t0=$SECONDS venv pid
  if alive "$(pid_of emulator)" && alive "$(pid_of lambda-host)" && emulator_answers \
     && port_open "$rt_host" "$rt_port"; then
    log "already running"
    return 0
  fi
  cmd_stop  # leftovers of a crashed run
  for p in "$emu_port" "$rt_port"; do
    if port_open 127.0.0.1 "$p"; then
      log "port $p is taken by another process: $(ss -ltnp 2>/dev/null | awk -v p=":$p" '$4 ~ p' | head -1)"
      return 1
    fi
  done
  mkdir -p "$piddir" "$logdir"
  venv="$("$here/setup-python.sh")"

  if [[ "$mode" == spawn && "${BRFED_SKIP_BUILD:-0}" != 1 ]]; then
    local pkgs=() p
    while read -r p; do [[ -n "$p" ]] && pkgs+=(-p "$p"); done < <(function_packages)
    log "cargo build ${pkgs[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR; waits if another build holds the lock)"
    (cd "$repo" && cargo build "${pkgs[@]}") >>"$logdir/lambda-build.log" 2>&1 || {
      log "cargo build failed: see $logdir/lambda-build.log"; tail -20 "$logdir/lambda-build.log" >&2; return 1; }
  fi

  # Everything below runs with the world's AWS settings; function instances inherit them.
  eval "$(print_env | grep -v STATE_MACHINE_ARN)"
  export BRFED_WORLD_DIR="$world" BRFED_CACHE="$cache" BRFED_LAMBDA_MODE="$mode"
  export BRFED_LAMBDA_MAX_CONCURRENCY="$maxc" BRFED_LAMBDA_HOST="$rt_host:$rt_port"
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$piddir/token"
  BRFED_AWS_TOKEN="$(<"$piddir/token")"
  export BRFED_AWS_TOKEN

  log "starting emulator (log $logdir/emulator.log)"
  (cd "$repo" && exec setsid "$venv/bin/python" "$here/emulator.py") >>"$logdir/emulator.log" 2>&1 </dev/null &
  echo $! >"$piddir/emulator.pid"

  log "starting lambda host (mode $mode, log $logdir/lambda-host.log)"
  local watch_args=(lambda watch -A "$rt_host" -P "$rt_port" --manifest-path "$repo/Cargo.toml")
  if [[ "$mode" == spawn ]]; then
    watch_args+=(--only-lambda-apis)
  else
    watch_args+=(--ignore-changes --concurrency "$maxc")
    [[ -f "$world/functions.env" ]] && watch_args+=(--env-file "$world/functions.env")
  fi
  (cd "$repo" && exec setsid "$venv/bin/cargo-lambda" "${watch_args[@]}") >>"$logdir/lambda-host.log" 2>&1 </dev/null &
  echo $! >"$piddir/lambda-host.pid"

  local up_e=0 up_l=0
  for _ in $(seq 300); do
    [[ $up_e == 1 ]] || { emulator_answers && up_e=1; }
    [[ $up_l == 1 ]] || { port_open "$rt_host" "$rt_port" && up_l=1; }
    [[ $up_e == 1 && $up_l == 1 ]] && break
    alive "$(pid_of emulator)" || break
    alive "$(pid_of lambda-host)" || break
    sleep 0.1
  done
  if [[ $up_e != 1 || $up_l != 1 ]]; then
    log "start failed (emulator up=$up_e, lambda host up=$up_l); last log lines:"
    tail -15 "$logdir/emulator.log" >&2 || true
    tail -15 "$logdir/lambda-host.log" >&2 || true
    cmd_stop || true
    return 1
  fi
  log "up in $((SECONDS - t0)) s: emulator http://$emu_host:$emu_port, lambda host http://$rt_host:$rt_port"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|restart|status|env" >&2; exit 2 ;;
esac
