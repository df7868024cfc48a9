#!/usr/bin/env bash
# world.sh — brfed's local world in one command: N real Kubernetes data planes (dataplanes.sh),
# the AWS emulator + Lambda host running our function binaries (aws.sh), brfed's state machines
# and rules deployed from the repo (deploy.py), the simulated TiDB Operator, and one seeded TiDB
# cluster spread over every data plane.
#
#   world.sh setup      build/install everything (idempotent, cached under ~/.cache/brfed)
#   world.sh up [N]     start the world with N data planes (default 3); writes $WORLD/env
#   world.sh down       stop everything it started; leaves no process
#   world.sh env        print the exports of $WORLD/env (eval them in a shell)
#   world.sh status
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export BRFED_WORLD_DIR=${BRFED_WORLD_DIR:-$REPO/.world}
export BRFED_CACHE=${BRFED_CACHE:-$HOME/.cache/brfed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$BRFED_CACHE/target}
WORLD=$BRFED_WORLD_DIR
SIM_ADDR=127.0.0.1:18080
CATALOG_BUCKET=brfed-backups
# Where the world's stack may keep backups (BRFED_BACKUP_LOCATIONS, as the template's
# BackupBucketName/BackupPrefix pairs give it): the whole catalog bucket, where every test writes
# under a folder of its own (a location the template never gives: its BackupPrefix is a folder),
# and a second bucket's folder, for the tests of a second location.
BACKUP_LOCATIONS="$CATALOG_BUCKET/,brfed-second-backups/tidb/"

say() { echo "world: $*" >&2; }
die() { echo "world: ERROR: $*" >&2; exit 1; }
ms() { date +%s%3N; }

setup() {
  local t0; t0=$(ms)
  "$HERE/setup-apiserver.sh" >/dev/null
  "$HERE/setup-python.sh" >/dev/null
  say "building the function binaries and the simulated operator"
  (cd "$REPO" && cargo build --workspace --bins --quiet)
  say "setup done in $(( ($(ms) - t0) / 1000 )) s"
}

sim_pid() {
  local f=$WORLD/sim/sim.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q brfed-sim-operator && echo "$pid"
}

start_sim() {
  mkdir -p "$WORLD/sim" "$WORLD/logs"
  if sim_pid >/dev/null; then return; fi
  (
    # shellcheck disable=SC1091
    source "$WORLD/env"
    export SIM_HTTP_ADDR=$SIM_ADDR
    # the operator's own identity (dataplanes.sh), not the tests' administrator
    export KUBECONFIG=$WORLD/operator.kubeconfig
    exec "$CARGO_TARGET_DIR/debug/brfed-sim-operator" run
  ) >"$WORLD/logs/sim-operator.log" 2>&1 &
  echo $! >"$WORLD/sim/sim.pid"
  for _ in $(seq 1 200); do
    curl -fsS "http://$SIM_ADDR/healthz" >/dev/null 2>&1 && return
    kill -0 "$(cat "$WORLD/sim/sim.pid")" 2>/dev/null || die "the simulated operator exited; see $WORLD/logs/sim-operator.log"
    sleep 0.05
  done
  die "the simulated operator did not answer on $SIM_ADDR; see $WORLD/logs/sim-operator.log"
}

stop_sim() {
  local pid
  if pid=$(sim_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$WORLD/sim/sim.pid"
}

write_env() {
  local venv; venv=$("$HERE/setup-python.sh")
  {
    echo "# brfed local world: source this file, or eval \"\$(make -s world-env)\""
    "$HERE/dataplanes.sh" env
    "$HERE/aws.sh" env
    echo "export BRFED_CATALOG_BUCKET=$CATALOG_BUCKET"
    echo "export BRFED_BACKUP_LOCATIONS=$BACKUP_LOCATIONS"
    # the target of the schedule rules `brfed schedule apply` makes (the state machine ARNs come
    # from deploy.py's deployed.env, through aws.sh env)
    echo "export BRFED_SCHEDULE_TICK_FUNCTION_ARN=arn:aws:lambda:${AWS_REGION:-us-west-2}:123456789012:function:schedule-tick"
    # the function `brfed restore delete` invokes (aws lambda invoke, docs/aws-cli.md)
    echo "export BRFED_RESTORE_DELETE_FUNCTION_ARN=arn:aws:lambda:${AWS_REGION:-us-west-2}:123456789012:function:restore-delete"
    # the dead-letter queue `brfed schedule apply` gives the rule targets (deploy.py makes it)
    echo "export BRFED_SAFETY_NET_QUEUE_ARN=arn:aws:sqs:${AWS_REGION:-us-west-2}:123456789012:brfed-events-dlq"
    echo "export SIM_HTTP_ADDR=$SIM_ADDR"
    echo "export BRFED_WORLD_DIR=$WORLD"
    echo "export PATH=$venv/bin:\$PATH"
  } >"$WORLD/env.tmp"
  mv "$WORLD/env.tmp" "$WORLD/env"
}

up() {
  local n=${1:-3} t0; t0=$(ms)
  setup
  mkdir -p "$WORLD"
  "$HERE/dataplanes.sh" start "$n"
  # what every function process gets (re-read at each instance start)
  cat >"$WORLD/functions.env" <<ENV
BRFED_KUBECONFIG=$WORLD/functions.kubeconfig
BRFED_CATALOG_BUCKET=$CATALOG_BUCKET
BRFED_BACKUP_LOCATIONS=$BACKUP_LOCATIONS
BRFED_OBSERVE_BUDGET_SECONDS=${BRFED_OBSERVE_BUDGET_SECONDS:-20}
BRFED_WORK_BUDGET_SECONDS=${BRFED_WORK_BUDGET_SECONDS:-240}
BRFED_BACKUP_STATE_MACHINE_ARN=arn:aws:states:${AWS_REGION:-us-west-2}:123456789012:stateMachine:volume-backup
BRFED_DELETE_STATE_MACHINE_ARN=arn:aws:states:${AWS_REGION:-us-west-2}:123456789012:stateMachine:volume-backup-delete
RUST_LOG=${RUST_LOG:-info}
ENV
  BRFED_SKIP_BUILD=1 "$HERE/aws.sh" start
  write_env
  (
    # shellcheck disable=SC1091
    source "$WORLD/env"
    "$BRFED_CACHE/venv/bin/python" "$HERE/deploy.py" --with-fixtures >"$WORLD/logs/deploy.log" 2>&1 \
      || die "deploy failed; see $WORLD/logs/deploy.log"
  )
  write_env
  start_sim
  (
    # shellcheck disable=SC1091
    source "$WORLD/env"
    "$CARGO_TARGET_DIR/debug/brfed-sim-operator" seed --namespace tidb --name basic --key tidb-basic --stores 3 \
      >"$WORLD/logs/seed.log" 2>&1 || die "seeding failed; see $WORLD/logs/seed.log"
    # a restore target of the same layout: TidbClusters in recovery mode, no volumes yet
    "$CARGO_TARGET_DIR/debug/brfed-sim-operator" seed --namespace tidb-restore --name basic --key tidb-restore --stores 3 \
      --restore-target >>"$WORLD/logs/seed.log" 2>&1 || die "seeding failed; see $WORLD/logs/seed.log"
  )
  say "up: $n data planes, AWS emulator, simulated operator, TiDB cluster tidb/basic and restore target tidb-restore/basic seeded in $(( ($(ms) - t0) / 1000 )) s"
  say "use it from a shell: eval \"\$(make -s world-env)\""
}

down() {
  stop_sim
  "$HERE/aws.sh" stop || true
  "$HERE/dataplanes.sh" stop || true
  rm -f "$WORLD/env" "$WORLD/deployed.env"
  say "down"
}

case "${1:-}" in
  setup) setup ;;
  up) up "${2:-3}" ;;
  down) down ;;
  env) [ -f "$WORLD/env" ] || die "the world is not up (make world-up)"; grep '^export ' "$WORLD/env" ;;
  status)
    "$HERE/dataplanes.sh" status || true
    "$HERE/aws.sh" status && echo "aws: up" || echo "aws: down"
    sim_pid >/dev/null && echo "sim-operator: up" || echo "sim-operator: down" ;;
  *) echo "usage: world.sh setup | up [N] | down | env | status" >&2; exit 2 ;;
esac
