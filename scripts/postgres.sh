#!/usr/bin/env bash
# PostgreSQL for foldline's tests: `scripts/postgres.sh start|stop|restart|status`.
#
# Uses a server already answering at FOLDLINE_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres). Otherwise: `docker compose up postgres` where a
# Docker engine answers, else Debian's `postgresql` package, installed if missing, started with
# pg_ctlcluster, and opened to the URL's user without a password on loopback (a test machine).
# Either way, the server binaries (initdb, pg_ctl) are installed for the tests' private servers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host="$(url_host "$FOLDLINE_POSTGRES_URL")"
port="$(url_port "$FOLDLINE_POSTGRES_URL" 5432)"

answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$host" -p "$port"
    else
        port_open "$host" "$port"
    fi
}

cluster() {
    # The newest Debian cluster: "<version> <name>".
    pg_lsclusters --no-header 2>/dev/null | awk '{print $1, $2}' | sort -V | tail -n 1
}

native_start() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(cluster)" ]]; then
        apt_install postgresql postgresql-contrib
    fi
    read -r version name <<<"$(cluster)"
    [[ -n "${version:-}" ]] || die "no PostgreSQL cluster found after installing postgresql"
    local conf="/etc/postgresql/$version/$name"
    # Listen on the configured port; trust loopback connections (test machines only).
    if ! grep -q '^# foldline' "$conf/pg_hba.conf"; then
        say "allowing passwordless loopback connections in $conf/pg_hba.conf"
        local hba
        hba="$(cat "$conf/pg_hba.conf")"
        printf '# foldline: trust loopback for the test suite\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust\n%s\n' "$hba" >"$conf/pg_hba.conf"
    fi
    sed -i "s/^#\?port = .*/port = $port/" "$conf/postgresql.conf"
    say "starting PostgreSQL $version/$name on port $port"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start || true
    wait_until 60 PostgreSQL answers
}

native_stop() {
    read -r version name <<<"$(cluster)"
    [[ -n "${version:-}" ]] || die "no native PostgreSQL cluster to stop"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop -m fast
}

# Some tests run a private server of their own (tests/src/pg_server.rs: initdb and pg_ctl in a
# temporary directory, for settings the shared server lacks, such as prepared transactions).
# They need the server binaries here even when the shared server runs elsewhere (Docker,
# another host).
binaries() {
    if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1; then
        return
    fi
    apt_install postgresql
}

start() {
    if answers; then
        say "PostgreSQL answers at $host:$port"
    elif docker_available; then
        say "starting PostgreSQL with docker compose"
        docker compose -f "$ROOT/docker-compose.yml" up -d postgres
        wait_until 60 PostgreSQL answers
    else
        native_start
    fi
    binaries
}

stop() {
    if docker_available && docker compose -f "$ROOT/docker-compose.yml" ps -q postgres 2>/dev/null | grep -q .; then
        docker compose -f "$ROOT/docker-compose.yml" stop postgres
    else
        native_stop
    fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) if answers; then say "PostgreSQL answers at $host:$port"; else say "PostgreSQL does not answer at $host:$port"; exit 1; fi ;;
    *) die "usage: $0 start|stop|restart|status" ;;
esac
