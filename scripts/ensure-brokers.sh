#!/usr/bin/env bash
# The message brokers the microservices tests run against for real: Debian's redis-server and nats-server.
#   bash scripts/ensure-brokers.sh           installs what is missing, then starts each broker on its loopback
#                                           port (Redis 127.0.0.1:${REDIS_PORT:-6379}, NATS 127.0.0.1:${NATS_PORT:-4222})
#                                           unless something already listens there. Idempotent.
#   bash scripts/ensure-brokers.sh install   only installs what is missing (the tests start private brokers
#                                           themselves, on ports of their own: test/support/brokers.ts).
set -euo pipefail

redis_port="${REDIS_PORT:-6379}"
nats_port="${NATS_PORT:-4222}"
state_dir="${BROKERS_DIR:-${TMPDIR:-/tmp}/nestjs-posthog-telemetry-brokers}"

has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || echo "/usr/bin/$1"; }

missing=()
has redis-server || missing+=(redis-server)
has nats-server || missing+=(nats-server)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-brokers: ${missing[*]} missing and not root: install them with apt-get" >&2
    exit 1
  fi
  echo "ensure-brokers: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package may start a system redis-server on 6379 through systemd; harmless when there is none.
fi

[ "${1:-}" = "install" ] && exit 0

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name="$1" port="$2"
  for _ in $(seq 1 50); do
    listening "$port" && return 0
    sleep 0.1
  done
  echo "ensure-brokers: $name did not listen on 127.0.0.1:$port" >&2
  exit 1
}

mkdir -p "$state_dir"
if listening "$redis_port"; then
  echo "ensure-brokers: something already listens on 127.0.0.1:$redis_port (Redis)"
else
  "$(bin redis-server)" --bind 127.0.0.1 --port "$redis_port" --daemonize yes --save '' --appendonly no \
    --dir "$state_dir" --logfile "$state_dir/redis.log" --pidfile "$state_dir/redis.pid"
  wait_for redis-server "$redis_port"
  echo "ensure-brokers: redis-server on 127.0.0.1:$redis_port"
fi
if listening "$nats_port"; then
  echo "ensure-brokers: something already listens on 127.0.0.1:$nats_port (NATS)"
else
  setsid nohup "$(bin nats-server)" -a 127.0.0.1 -p "$nats_port" -P "$state_dir/nats.pid" </dev/null >"$state_dir/nats.log" 2>&1 &
  wait_for nats-server "$nats_port"
  echo "ensure-brokers: nats-server on 127.0.0.1:$nats_port"
fi
