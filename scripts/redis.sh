#!/usr/bin/env bash
# Redis for foldline's tests: `scripts/redis.sh start|stop|restart|status`.
#
# Uses a server already answering at FOLDLINE_REDIS_URL (default redis://127.0.0.1:6379).
# Otherwise: `docker compose up redis` where a Docker engine answers, else Debian's
# `redis-server` package, installed if missing and started as a daemon on the URL's port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host="$(url_host "$FOLDLINE_REDIS_URL")"
port="$(url_port "$FOLDLINE_REDIS_URL" 6379)"

answers() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == PONG ]]
    else
        port_open "$host" "$port"
    fi
}

native_start() {
    mkdir -p "$STATE_DIR/redis"
    say "starting redis-server on port $port"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
        --dir "$STATE_DIR/redis" --logfile "$STATE_DIR/redis/redis.log"
    wait_until 30 Redis answers
}

# The restart tests run a private redis-server of their own (tests/src/redis_server.rs), so
# the binaries are needed even when the shared server runs elsewhere (docker).
ensure_binaries() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-server
    fi
}

start() {
    ensure_binaries
    if answers; then
        say "Redis answers at $host:$port"
    elif docker_available; then
        say "starting Redis with docker compose"
        docker compose -f "$ROOT/docker-compose.yml" up -d redis
        wait_until 30 Redis answers
    else
        native_start
    fi
}

stop() {
    if docker_available && docker compose -f "$ROOT/docker-compose.yml" ps -q redis 2>/dev/null | grep -q .; then
        docker compose -f "$ROOT/docker-compose.yml" stop redis
    else
        redis-cli -h "$host" -p "$port" shutdown nosave >/dev/null 2>&1 || true
        wait_until 30 "Redis shutdown" bash -c "! (exec 3<>/dev/tcp/$host/$port) 2>/dev/null"
    fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) if answers; then say "Redis answers at $host:$port"; else say "Redis does not answer at $host:$port"; exit 1; fi ;;
    *) die "usage: $0 start|stop|restart|status" ;;
esac
