#!/usr/bin/env bash
# Apache Kafka for foldline's tests:
#
#   scripts/kafka.sh start|stop|restart|status|kill|freeze|thaw|reset|check [--hung]|fetch
#   scripts/kafka.sh cluster start|stop|status|kill N|stop-node N|start-node N|reset|check [--hung]
#
# `start` uses a broker already answering at FOLDLINE_KAFKA_BROKERS (default 127.0.0.1:9092).
# Otherwise: `docker compose up kafka` where a Docker engine answers, else natively: Java 17 and
# Maven from Debian's packages where missing, Apache Kafka's jars (the version pinned in
# scripts/kafka/pom.xml) fetched from Maven Central once into
# ${XDG_CACHE_HOME:-~/.cache}/foldline/kafka-<version>/libs, and one combined KRaft
# broker+controller on loopback (the address's port, its controller on the next port), with its
# data, config, PID and logs in $FOLDLINE_STATE_DIR/kafka. `stop` is a controlled shutdown
# (SIGTERM, SIGKILL after FOLDLINE_KAFKA_STOP_TIMEOUT s), `kill` a crash (SIGKILL) for fault
# tests; `start` after either keeps the data. `reset` stops the broker and deletes its data.
# `check` proves the broker does what the store needs: topic creation, transactions, a
# read_committed reader (scripts/kafka/Check.java; --hung adds a transaction left to time out).
#
# FOLDLINE_KAFKA_NATIVE=1 never uses docker; with FOLDLINE_KAFKA_BROKERS and FOLDLINE_STATE_DIR
# pointing elsewhere it runs a second single node beside the shared one (the broker-crash test).
#
# `cluster` runs three combined nodes on loopback for fault tests, always natively (fault tests
# kill its nodes by PID): clients on FOLDLINE_KAFKA_CLUSTER_PORT (default 19092) and the next
# two ports, controllers 100 above them, static controller.quorum.voters, replication factor 3,
# min.insync.replicas=2 everywhere (the internal topics too). State in
# $FOLDLINE_STATE_DIR/kafka-cluster/node<N>. `cluster start` prints the bootstrap list as
# FOLDLINE_KAFKA_CLUSTER_BROKERS=... on stdout.
#
# Verified on this script's first real runs (Kafka 4.4.0, Debian's OpenJDK 17.0.15, Maven 3.8.7,
# 2 cores):
# - Maven Central serves kafka_2.13 4.4.0. With log4j 2.25.5 and maven-dependency-plugin 3.8.1
#   pinned, copy-dependencies gives 45 jars, 43 MB. slf4j-api 1.7.36 and log4j-api/core come
#   transitively; only the SLF4J 1 binding log4j-slf4j-impl must be added: without it SLF4J falls
#   back to NOP, the broker runs and its log stays empty.
# - `kafka.Kafka --version` prints 4.4.0. kafka.tools.StorageTool (in kafka_2.13) formats in ~1 s:
#   `format --standalone` for the single node (controller.quorum.bootstrap.servers, kraft.version
#   1), a plain `format` on each cluster node (static controller.quorum.voters). A cluster id
#   starting with '-' is taken for an option ("argument --cluster-id/-t: expected one argument").
# - -Dlog4j2.configurationFile=<plain path> to a log4j2 properties file fills logs/server.log;
#   log4j's own shutdown hook cut the shutdown's lines off until `shutdownHook = disable`.
# - server.properties: `key=2  # note` fails ("Invalid value 2  # note ... Not a number"); an
#   unknown key is accepted without a word in the log.
# - The client port is refused until the broker is ready, then answers ApiVersions v0: that is
#   the readiness probe. JVM start to ready: ~2 s; RSS at idle ~150-170 MB with -Xmx512m.
# - SIGTERM is a controlled shutdown (~0.5 s, .kafka_cleanshutdown written). After SIGKILL the
#   same data comes back, but the broker cannot register again until its old session expires
#   (DUPLICATE_BROKER_REGISTRATION), hence broker.session.timeout.ms=3000 below.
# - One node: topic creation, transactions (commit, abort, read_committed) work with RF 1 / min
#   ISR 1 for the internal topics; with transaction.state.log.replication.factor=3 instead,
#   init_transactions times out (INVALID_REPLICATION_FACTOR in the log). A transaction left open
#   past its 2 s timeout is aborted by the broker, and its producer fenced.
# - Cluster: a lone node never answers (no quorum); any two do. With one node SIGKILLed (the
#   active controller, or the partition's leader) acks=all transactional writes to a topic with
#   RF 3 / min ISR 2 go on; with two down they time out. `start-node` brings a node back into
#   the ISR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pom="$ROOT/scripts/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
[[ -n "$version" ]] || die "no <kafka.version> in $pom"
# Outside the repository, so every checkout (CI's fresh clones among them) shares one download.
# (~ rather than $HOME: a CI environment without HOME still has a home directory.)
cache="${FOLDLINE_KAFKA_CACHE:-${XDG_CACHE_HOME:-$(cd ~ && pwd)/.cache}/foldline/kafka-$version}"
libs="$cache/libs"
start_timeout="${FOLDLINE_KAFKA_START_TIMEOUT:-90}"
stop_timeout="${FOLDLINE_KAFKA_STOP_TIMEOUT:-30}"
# A modest heap: the log cleaner's buffer is shrunk below, the rest of a test broker is small.
# SerialGC and C1 only: fewest threads and the quickest start on two shared cores.
java_opts="${FOLDLINE_KAFKA_JAVA_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError}"
cluster_port="${FOLDLINE_KAFKA_CLUSTER_PORT:-19092}"

# ---- the broker's protocol ----

# kafka_answers HOST PORT: whether a Kafka broker answers there. Sends an ApiVersions v0 request
# (api key 18, correlation id 0x464c, client id "foldline") and checks the reply carries the
# correlation id back, so a port held by something else does not pass for a broker.
kafka_answers() {
    local reply
    # The inner shell expands $1 and $2; the timeout bounds a port that accepts and never replies.
    # shellcheck disable=SC2016
    reply="$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "\x00\x00\x00\x12\x00\x12\x00\x00\x00\x00\x46\x4c\x00\x08foldline" >&3
        head -c 8 <&3 | od -An -tx1' _ "$1" "$2" 2>/dev/null)" || return 1
    reply="${reply//[[:space:]]/}"
    [[ "${reply:8:8}" == 0000464c ]]
}

# brokers_answer LIST: whether any host:port of a comma-separated list answers.
brokers_answer() {
    local addr
    for addr in ${1//,/ }; do
        if kafka_answers "${addr%:*}" "${addr##*:}"; then return 0; fi
    done
    return 1
}

# ---- Java, Maven and the jars ----

java_major() {
    "$1" -version 2>&1 | sed -n 's/.* version "\([0-9]*\)[."].*/\1/p' | head -n 1
}

# Kafka 4.x brokers need Java 17 or newer (their classes are built for 17).
ensure_java() {
    local candidate major pass
    for pass in 1 2; do
        for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/java-17-openjdk-*/bin/java; do
            [[ -x "$candidate" ]] || continue
            major="$(java_major "$candidate")"
            if [[ "${major:-0}" -ge 17 ]]; then
                JAVA="$candidate"
                return
            fi
        done
        [[ $pass == 1 ]] && apt_install openjdk-17-jre-headless
    done
    die "no Java 17 or newer found after installing openjdk-17-jre-headless"
}

# fetch: Kafka's jars from Maven Central into the cache, once per version of scripts/kafka/pom.xml.
fetch() {
    mkdir -p "$cache"
    # Two scripts starting at once (the cluster and the single broker) fetch once.
    exec 9>"$cache/lock"
    flock 9
    if [[ -f "$libs/kafka_2.13-$version.jar" ]] && cmp -s "$pom" "$cache/pom.xml"; then
        exec 9>&-
        return
    fi
    command -v mvn >/dev/null 2>&1 || apt_install maven
    say "fetching Apache Kafka $version and its dependencies from Maven Central into $libs"
    # Into a fresh directory renamed at the end, so an interrupted fetch never passes for a cache.
    local tmp="$cache/libs.partial"
    rm -rf "$tmp"
    if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >"$cache/fetch.log" 2>&1; then
        tail -n 40 "$cache/fetch.log" >&2
        die "could not fetch Apache Kafka $version with Maven (log: $cache/fetch.log)"
    fi
    [[ -f "$tmp/kafka_2.13-$version.jar" ]] || die "Maven did not deliver kafka_2.13-$version.jar (log: $cache/fetch.log)"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    cp "$pom" "$cache/pom.xml"
    exec 9>&-
}

# ---- one node: config, format, launch, wait, stop ----

# write_log4j DIR: all broker logging to DIR/logs/server.log (two 50 MB files at most).
write_log4j() {
    cat >"$1/log4j2.properties" <<'EOF'
# Log4j's own shutdown hook would stop the logging before Kafka's hook logs its shutdown.
shutdownHook = disable
appender.f.type = RollingFile
appender.f.name = F
appender.f.fileName = ${sys:kafka.logs.dir}/server.log
appender.f.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
appender.f.policies.type = Policies
appender.f.policies.size.type = SizeBasedTriggeringPolicy
appender.f.policies.size.size = 50MB
appender.f.strategy.type = DefaultRolloverStrategy
appender.f.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.f.ref = F
# One line per request otherwise.
logger.req.name = kafka.request.logger
logger.req.level = WARN
EOF
}

# write_common FILE RF MIN_ISR INTERNAL_PARTITIONS: the settings both modes share. Comments
# stay on their own lines: java.util.Properties has no trailing comments.
write_common() {
    cat >>"$1" <<EOF
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

# Internal topics need as many nodes as their replication factor, or consumer groups and
# transactions never find a coordinator.
offsets.topic.replication.factor=$2
offsets.topic.num.partitions=$4
transaction.state.log.replication.factor=$2
transaction.state.log.min.isr=$3
transaction.state.log.num.partitions=$4
share.coordinator.state.topic.replication.factor=$2
share.coordinator.state.topic.min.isr=$3
share.coordinator.state.topic.num.partitions=$4
default.replication.factor=$2
min.insync.replicas=$3
num.partitions=1
# The store creates its topics with the settings it checks; a typo must not create one.
auto.create.topics.enable=false

# Transactions: the client's transaction.timeout.ms must be > 0 and <= this (the default, 15
# min), so the short timeouts of the hung-owner tests are accepted; timed-out transactions are
# aborted within a second of their timeout instead of ten.
transaction.max.timeout.ms=900000
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000

# A killed node's broker session expires after 3 s instead of 9: until then the cluster's acks=all
# writes stall on it (it stays in the ISRs), and a restarted node cannot register again
# (DUPLICATE_BROKER_REGISTRATION), the single node included.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500

# Quick to start and to rebalance, as in Kafka's own test harness.
group.initial.rebalance.delay.ms=0
log.initial.task.delay.ms=100

# Small on two shared cores: the cleaner's dedupe buffer (128 MiB on the heap by default) and
# the thread pools.
log.cleaner.dedupe.buffer.size=2097152
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
group.coordinator.threads=1
EOF
}

# node_alive DIR: whether the broker whose PID is in DIR/pid still runs (and is that broker, not
# a process that inherited the number).
node_alive() {
    local pid
    pid="$(cat "$1/pid" 2>/dev/null)" || return 1
    [[ -n "$pid" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $1/server.properties"
}

# node_format DIR [FLAGS...]: format the KRaft log dir once; later starts reuse the data.
node_format() {
    local dir="$1"
    shift
    [[ -f "$dir/data/meta.properties" ]] && return
    mkdir -p "$dir/logs"
    if ! "$JAVA" -cp "$libs/*" kafka.tools.StorageTool format -t "$(cat "$dir/cluster-id")" \
        -c "$dir/server.properties" "$@" >"$dir/logs/format.log" 2>&1; then
        cat "$dir/logs/format.log" >&2
        die "formatting $dir/data failed"
    fi
}

# cluster_id: a random KRaft cluster id (what `kafka-storage.sh random-uuid` prints: 16 bytes in
# URL-safe base64), kept to letters and digits so it can never read as an option.
cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr -d '=\n')"
        case "$id" in *[+/]*) ;; *) printf '%s' "$id"; return ;; esac
    done
}

# node_launch DIR: start kafka.Kafka on DIR/server.properties in the background, in a session of
# its own (Ctrl-C in the terminal that ran the script does not reach it).
node_launch() {
    local dir="$1" p
    for p in $(sed -n 's/^listeners=.*:\([0-9]*\),.*:\([0-9]*\)$/\1 \2/p' "$dir/server.properties"); do
        if port_open 127.0.0.1 "$p"; then
            die "port $p is taken by something that is not this broker; free it, or choose other ports"
        fi
    done
    mkdir -p "$dir/logs"
    stat -c %s "$dir/logs/server.log" 2>/dev/null >"$dir/logs/launched-at-byte" || echo 0 >"$dir/logs/launched-at-byte"
    # The inner shell writes its own PID and execs java, so the file holds the broker's PID.
    # shellcheck disable=SC2016,SC2086
    setsid bash -c 'echo $$ >"$1/pid"; shift; exec "$@"' _ "$dir" \
        "$JAVA" $java_opts -Dkafka.logs.dir="$dir/logs" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
        >"$dir/logs/stdout.log" 2>&1 </dev/null &
    local deadline=$((SECONDS + 5))
    until [[ -s "$dir/pid" ]]; do
        ((SECONDS < deadline)) || die "the broker in $dir did not start"
        sleep 0.05
    done
}

# node_wait DIR PORT WHAT: wait until the node answers on PORT; a broker that exits is reported
# at once with the end of its log, not after the whole timeout.
node_wait() {
    local dir="$1" port="$2" what="$3"
    local deadline=$((SECONDS + start_timeout))
    until kafka_answers 127.0.0.1 "$port"; do
        if ! node_alive "$dir"; then
            node_log_tail "$dir"
            die "$what exited during startup (logs: $dir/logs)"
        fi
        if ((SECONDS >= deadline)); then
            node_log_tail "$dir"
            die "$what did not answer on 127.0.0.1:$port within ${start_timeout}s (logs: $dir/logs)"
        fi
        sleep 0.2
    done
}

# node_log_tail DIR: what went wrong, from the node's logs: the JVM's own output, the errors
# with the line after each (the exception's message), then the end of the log (which is mostly
# the shutdown that the error caused).
node_log_tail() {
    local out="$1/logs/stdout.log" log="$1/logs/server.log" since
    if [[ -s "$out" ]]; then
        printf -- '--- %s ---\n' "$out" >&2
        tail -n 20 "$out" >&2
    fi
    # Only what this start wrote: the log goes on from earlier runs.
    since="$(cat "$1/logs/launched-at-byte" 2>/dev/null || echo 0)"
    # A log rolled over since (50 MB) starts afresh.
    if (($(stat -c %s "$log" 2>/dev/null || echo 0) < since)); then since=0; fi
    if [[ -s "$log" ]]; then
        printf -- '--- errors in %s ---\n' "$log" >&2
        tail -c +"$((since + 1))" "$log" | grep -A1 -E '^\[[^]]*\] (ERROR|FATAL) ' | grep -vE '^(\s+at |--$)' | head -n 12 >&2 || true
        printf -- '--- last lines of %s ---\n' "$log" >&2
        tail -c +"$((since + 1))" "$log" | tail -n 10 >&2
    fi
}

# node_signal DIR SIGNAL [WAIT]: send SIGNAL to the node and wait up to WAIT seconds for it to
# exit; after WAIT, SIGKILL. Does nothing when the node is not running.
node_signal() {
    local dir="$1" sig="$2" wait="${3:-$stop_timeout}"
    node_alive "$dir" || return 0
    local pid
    pid="$(cat "$dir/pid")"
    kill -"$sig" "$pid" 2>/dev/null || true
    # A frozen (SIGSTOPped) broker handles SIGTERM only once it runs again.
    kill -CONT "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + wait))
    while node_alive "$dir"; do
        if ((SECONDS >= deadline)); then
            say "the broker in $dir (pid $pid) did not stop within ${wait}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            wait=10
        fi
        sleep 0.1
    done
    rm -f "$dir/pid"
}

run_check() {
    local bootstrap="$1"
    shift
    fetch
    ensure_java
    say "checking the broker at $bootstrap: topics, transactions, read_committed"
    "$JAVA" -cp "$libs/*" "$ROOT/scripts/kafka/Check.java" "$bootstrap" "$@"
}

# ---- the single broker ----

single_dir="$STATE_DIR/kafka"
first="${FOLDLINE_KAFKA_BROKERS%%,*}"
host="${first%:*}"
port="${first##*:}"
controller_port=$((port + 1))

compose() { docker compose -f "$ROOT/docker-compose.yml" "$@"; }
# FOLDLINE_KAFKA_NATIVE=1 never uses docker: a broker the fault tests kill by PID.
use_compose() { [[ "${FOLDLINE_KAFKA_NATIVE:-}" != 1 ]] && docker_available; }
compose_runs_kafka() { use_compose && compose ps -q kafka 2>/dev/null | grep -q .; }

native_start() {
    case "$host" in
        127.0.0.1 | localhost) ;;
        *) die "no broker answers at $FOLDLINE_KAFKA_BROKERS, and $host is not this machine: start one there, or unset FOLDLINE_KAFKA_BROKERS" ;;
    esac
    fetch
    ensure_java
    local dir="$single_dir"
    if ! node_alive "$dir"; then
        mkdir -p "$dir"
        [[ -s "$dir/cluster-id" ]] || cluster_id >"$dir/cluster-id"
        # The listeners come from FOLDLINE_KAFKA_BROKERS on every start; the data stays.
        cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh on every start: one combined KRaft broker+controller for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
log.dirs=$dir/data
EOF
        write_common "$dir/server.properties" 1 1 1
        write_log4j "$dir"
        # A single controller: a dynamic quorum of itself, as in Kafka's quickstart.
        node_format "$dir" --standalone
        say "starting Apache Kafka $version on 127.0.0.1:$port (controller :$controller_port, logs in $dir/logs)"
        node_launch "$dir"
    else
        say "the broker in $dir is already running (pid $(cat "$dir/pid")): waiting for it"
    fi
    node_wait "$dir" "$port" "Apache Kafka"
}

start() {
    if brokers_answer "$FOLDLINE_KAFKA_BROKERS"; then
        say "Kafka answers at $FOLDLINE_KAFKA_BROKERS"
    elif use_compose; then
        say "starting Kafka with docker compose"
        compose up -d kafka
        wait_until "$start_timeout" Kafka brokers_answer "$FOLDLINE_KAFKA_BROKERS"
    else
        native_start
        say "Apache Kafka $version answers at $FOLDLINE_KAFKA_BROKERS"
    fi
}

stop() {
    if compose_runs_kafka; then
        compose stop kafka
    elif node_alive "$single_dir"; then
        say "stopping the broker (pid $(cat "$single_dir/pid"))"
        node_signal "$single_dir" TERM
    else
        say "no broker started by kafka.sh is running"
    fi
}

crash() {
    if compose_runs_kafka; then
        compose kill kafka
    elif node_alive "$single_dir"; then
        say "killing the broker (pid $(cat "$single_dir/pid")) with SIGKILL"
        node_signal "$single_dir" KILL
    else
        die "no broker started by kafka.sh is running"
    fi
}

# freeze/thaw: SIGSTOP and SIGCONT to the native single broker, for fault tests: it keeps its
# connections and answers nothing until thawed.
freeze() {
    node_alive "$single_dir" || die "no broker started by kafka.sh is running"
    say "freezing the broker (pid $(cat "$single_dir/pid")) with SIGSTOP"
    kill -STOP "$(cat "$single_dir/pid")"
}

thaw() {
    node_alive "$single_dir" || die "no broker started by kafka.sh is running"
    say "thawing the broker (pid $(cat "$single_dir/pid")) with SIGCONT"
    kill -CONT "$(cat "$single_dir/pid")"
}

reset() {
    stop
    say "deleting the broker's data in $single_dir"
    rm -rf "$single_dir"
}

status() {
    if brokers_answer "$FOLDLINE_KAFKA_BROKERS"; then
        say "Kafka answers at $FOLDLINE_KAFKA_BROKERS"
    else
        say "Kafka does not answer at $FOLDLINE_KAFKA_BROKERS"
        return 1
    fi
}

# ---- the 3-node cluster ----

cluster_root="$STATE_DIR/kafka-cluster"
nodes=(1 2 3)
node_port() { echo $((cluster_port + $1 - 1)); }
node_controller_port() { echo $((cluster_port + 100 + $1 - 1)); }
cluster_brokers() {
    local n list=()
    for n in "${nodes[@]}"; do list+=("127.0.0.1:$(node_port "$n")"); done
    (IFS=,; printf '%s' "${list[*]}")
}

node_number() {
    [[ "${1:-}" =~ ^[123]$ ]] || die "which node? 1, 2 or 3 (got '${1:-}')"
}

# cluster_config N: node N's server.properties (the same voters line on every node).
cluster_config() {
    local n="$1" dir="$cluster_root/node$1" voters=() v
    for v in "${nodes[@]}"; do voters+=("$v@127.0.0.1:$(node_controller_port "$v")"); done
    mkdir -p "$dir"
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh: node $n of a 3-node KRaft cluster for fault tests.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(IFS=,; printf '%s' "${voters[*]}")
listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),CONTROLLER://127.0.0.1:$(node_controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$n")
log.dirs=$dir/data
EOF
    # Three partitions for the internal topics, so the coordinators spread over the nodes and
    # killing any node moves some, as in a real cluster.
    write_common "$dir/server.properties" 3 2 3
    write_log4j "$dir"
}

cluster_start_nodes() {
    fetch
    ensure_java
    mkdir -p "$cluster_root"
    [[ -s "$cluster_root/cluster-id" ]] || cluster_id >"$cluster_root/cluster-id"
    local n dir formats=() launch=()
    for n in "$@"; do
        dir="$cluster_root/node$n"
        if node_alive "$dir"; then continue; fi
        cluster_config "$n"
        cp "$cluster_root/cluster-id" "$dir/cluster-id"
        # Static voters: a plain format, the same on every node. The three at once: each is a
        # JVM start of a second or so.
        node_format "$dir" &
        formats+=($!)
        launch+=("$n")
    done
    for n in "${formats[@]}"; do wait "$n" || exit 1; done
    for n in "${launch[@]}"; do
        say "starting cluster node $n on 127.0.0.1:$(node_port "$n") (controller :$(node_controller_port "$n"))"
        node_launch "$cluster_root/node$n"
    done
    # All first, then the waits: a node finishes starting only once a majority of the quorum runs.
    for n in "$@"; do
        node_wait "$cluster_root/node$n" "$(node_port "$n")" "cluster node $n (a node answers only once two of the three run)"
    done
}

cluster() {
    case "${1:-}" in
        start)
            cluster_start_nodes "${nodes[@]}"
            say "the 3-node cluster answers at $(cluster_brokers)"
            printf 'FOLDLINE_KAFKA_CLUSTER_BROKERS=%s\n' "$(cluster_brokers)"
            ;;
        start-node)
            node_number "${2:-}"
            cluster_start_nodes "$2"
            say "cluster node $2 answers at 127.0.0.1:$(node_port "$2")"
            ;;
        stop)
            local n
            # SIGTERM to all at once: stopped one by one, the last would wait for a quorum.
            for n in "${nodes[@]}"; do
                if node_alive "$cluster_root/node$n"; then kill -TERM "$(cat "$cluster_root/node$n/pid")" 2>/dev/null || true; fi
            done
            for n in "${nodes[@]}"; do node_signal "$cluster_root/node$n" TERM; done
            say "the cluster is stopped"
            ;;
        stop-node)
            node_number "${2:-}"
            node_alive "$cluster_root/node$2" || die "cluster node $2 is not running"
            say "stopping cluster node $2 (pid $(cat "$cluster_root/node$2/pid"))"
            node_signal "$cluster_root/node$2" TERM
            ;;
        kill)
            node_number "${2:-}"
            node_alive "$cluster_root/node$2" || die "cluster node $2 is not running"
            say "killing cluster node $2 (pid $(cat "$cluster_root/node$2/pid")) with SIGKILL"
            node_signal "$cluster_root/node$2" KILL
            ;;
        status)
            local n rc=0 state
            for n in "${nodes[@]}"; do
                if kafka_answers 127.0.0.1 "$(node_port "$n")"; then state=answers; else state="does not answer"; rc=1; fi
                if node_alive "$cluster_root/node$n"; then state+=", pid $(cat "$cluster_root/node$n/pid")"; fi
                say "cluster node $n at 127.0.0.1:$(node_port "$n"): $state"
            done
            return $rc
            ;;
        reset)
            cluster stop
            say "deleting the cluster's data in $cluster_root"
            rm -rf "$cluster_root"
            ;;
        check)
            shift
            run_check "$(cluster_brokers)" 3 "$@"
            ;;
        *) die "usage: $0 cluster start|stop|status|kill N|stop-node N|start-node N|reset|check [--hung]" ;;
    esac
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) status ;;
    kill) crash ;;
    freeze) freeze ;;
    thaw) thaw ;;
    reset) reset ;;
    check) shift; run_check "$FOLDLINE_KAFKA_BROKERS" 1 "$@" ;;
    fetch) fetch; printf '%s\n' "$libs" ;;
    cluster) shift; cluster "$@" ;;
    *) die "usage: $0 start|stop|restart|status|kill|freeze|thaw|reset|check [--hung]|fetch, or $0 cluster ..." ;;
esac
