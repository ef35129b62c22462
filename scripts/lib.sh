# Shared helpers for the service scripts. Sourced, not run.
# shellcheck shell=bash

FOLDLINE_POSTGRES_URL="${FOLDLINE_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
FOLDLINE_REDIS_URL="${FOLDLINE_REDIS_URL:-redis://127.0.0.1:6379}"
# Kafka's bootstrap list, host:port[,host:port...] as clients take it.
FOLDLINE_KAFKA_BROKERS="${FOLDLINE_KAFKA_BROKERS:-127.0.0.1:9092}"
export FOLDLINE_POSTGRES_URL FOLDLINE_REDIS_URL FOLDLINE_KAFKA_BROKERS

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where services started natively by these scripts keep their data and logs.
STATE_DIR="${FOLDLINE_STATE_DIR:-$ROOT/.foldline}"

say() { printf '[foldline] %s\n' "$*" >&2; }
die() { printf '[foldline] error: %s\n' "$*" >&2; exit 1; }

# url_host URL / url_port URL DEFAULT: the host and port of a service URL.
url_host() {
    local rest="${1#*://}"
    rest="${rest#*@}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    printf '%s' "${rest%%:*}"
}
url_port() {
    local rest="${1#*://}"
    rest="${rest#*@}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    if [[ "$rest" == *:* ]]; then printf '%s' "${rest##*:}"; else printf '%s' "$2"; fi
}

# port_open HOST PORT: whether something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_until SECONDS WHAT CMD...: retry CMD every 0.2 s until it succeeds or time runs out.
wait_until() {
    local seconds="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            die "$what did not come up within ${seconds}s"
        fi
        sleep 0.2
    done
}

docker_available() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "cannot install $* here: no apt-get (install it yourself, or run a Docker engine)"
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
    # One `apt-get update` a day is enough: each service script runs in its own process, and a
    # fresh machine installs several of them in a row.
    local stamp="$STATE_DIR/apt-updated"
    if [[ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]]; then
        say "apt-get update"
        $sudo apt-get update -qq >/dev/null
        mkdir -p "$STATE_DIR"
        touch "$stamp"
    fi
    say "installing $* from Debian's packages"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
