#!/usr/bin/env bash
# Local Neo4j 5.26 (Community, embedded, Bolt on 127.0.0.1) for development and tests.
#
#   scripts/neo4j/neo4j.sh start [--fresh]   build if needed, start, wait until ready
#   scripts/neo4j/neo4j.sh stop              stop (SIGTERM, then SIGKILL after NEO4J_STOP_TIMEOUT)
#   scripts/neo4j/neo4j.sh status            exit 0 if running and Bolt answers
#   scripts/neo4j/neo4j.sh restart [--fresh]
#   scripts/neo4j/neo4j.sh build             (re)build the launcher only
#   scripts/neo4j/neo4j.sh import DIR [--overwrite]
#                                            offline initial load (neo4j-admin database import full)
#                                            of the CSV files tracegraph wrote into DIR; server stopped
#
# See scripts/neo4j/README.md for the environment variables.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

abs_path() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$PWD/$1" ;;
    esac
}

NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
NEO4J_HOME_DIR="$(abs_path "${NEO4J_HOME_DIR:-$SCRIPT_DIR/.data}")"
NEO4J_START_TIMEOUT="${NEO4J_START_TIMEOUT:-180}"
NEO4J_STOP_TIMEOUT="${NEO4J_STOP_TIMEOUT:-60}"
NEO4J_HEAP="${NEO4J_HEAP:-1g}"
NEO4J_PAGECACHE="${NEO4J_PAGECACHE:-512m}"
NEO4J_JAVA_OPTS="${NEO4J_JAVA_OPTS:-}"
if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    JAVA="${JAVA:-$JAVA_HOME/bin/java}"
else
    JAVA="${JAVA:-java}"
fi

PID_FILE="$NEO4J_HOME_DIR/neo4j.pid"
LOG_FILE="$NEO4J_HOME_DIR/launcher.log"
LOCK_FILE="$NEO4J_HOME_DIR/.neo4j.sh.lock"
TARGET_DIR="$SCRIPT_DIR/target"
BUILD_STAMP="$TARGET_DIR/.build-stamp"
MAIN_CLASS="org.tracegraph.Neo4jLauncher"
READY_MARKER="NEO4J_READY"
FAILED_MARKER="NEO4J_FAILED"

# JVM flags: heap plus what Neo4j 5.26's own launcher passes (server.jvm.additional
# defaults in neo4j.conf), and a few extra --add-opens that are harmless on Java 17.
JVM_OPTS=(
    "-Xms${NEO4J_HEAP}" "-Xmx${NEO4J_HEAP}"
    -XX:+UseG1GC
    -XX:-OmitStackTraceInFastThrow
    -XX:+UnlockExperimentalVMOptions
    -XX:+TrustFinalNonStaticFields
    -XX:+DisableExplicitGC
    -XX:+ExitOnOutOfMemoryError
    -Djdk.nio.maxCachedBufferSize=1024
    -Dio.netty.tryReflectionSetAccessible=true
    -Djdk.tls.ephemeralDHKeySize=2048
    -Djdk.tls.rejectClientInitiatedRenegotiation=true
    --add-opens=java.base/java.nio=ALL-UNNAMED
    --add-opens=java.base/java.io=ALL-UNNAMED
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens=java.base/java.lang=ALL-UNNAMED
    --add-opens=java.base/java.util=ALL-UNNAMED
    --add-exports=java.base/sun.nio.ch=ALL-UNNAMED
    --enable-native-access=ALL-UNNAMED
    -Dlog4j2.disable.jmx=true
    -Dfile.encoding=UTF-8
)

[[ "$NEO4J_BOLT_PORT" =~ ^[0-9]+$ ]] && ((NEO4J_BOLT_PORT >= 1 && NEO4J_BOLT_PORT <= 65535)) ||
    { printf 'neo4j.sh: error: NEO4J_BOLT_PORT must be a port number, got %s\n' "$NEO4J_BOLT_PORT" >&2; exit 2; }
[[ "$NEO4J_START_TIMEOUT" =~ ^[0-9]+$ && "$NEO4J_STOP_TIMEOUT" =~ ^[0-9]+$ ]] ||
    { echo "neo4j.sh: error: NEO4J_START_TIMEOUT / NEO4J_STOP_TIMEOUT must be whole seconds" >&2; exit 2; }

say() { printf 'neo4j.sh: %s\n' "$*"; }
die() { printf 'neo4j.sh: error: %s\n' "$*" >&2; exit 1; }

port_open() {
    # Succeeds if something accepts TCP connections on 127.0.0.1:$NEO4J_BOLT_PORT.
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/${NEO4J_BOLT_PORT}" 2>/dev/null
}

read_pid() {
    local pid=""
    if [[ -f "$PID_FILE" ]]; then
        pid="$(tr -dc '0-9' <"$PID_FILE" || true)"
    fi
    printf '%s' "$pid"
}

# Is $1 a live process running our launcher (guards against recycled pids)?
is_our_process() {
    local pid="$1"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$MAIN_CLASS" || return 1
    fi
    return 0
}

show_log_tail() {
    if [[ -f "$LOG_FILE" ]]; then
        echo "----- last lines of $LOG_FILE -----" >&2
        tail -n 60 "$LOG_FILE" >&2 || true
        echo "----- (Neo4j's own logs: $NEO4J_HOME_DIR/logs/) -----" >&2
    fi
}

needs_build() {
    [[ -d "$TARGET_DIR/classes" && -d "$TARGET_DIR/lib" && -f "$BUILD_STAMP" ]] || return 0
    [[ -f "$TARGET_DIR/classes/org/tracegraph/Neo4jLauncher.class" ]] || return 0
    [[ -n "$(find "$SCRIPT_DIR/pom.xml" "$SCRIPT_DIR/src" -newer "$BUILD_STAMP" -print -quit)" ]] && return 0
    return 1
}

do_build() {
    command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install maven)"
    say "building launcher (mvn package; first run downloads ~170 MB from Maven Central)..."
    local t0=$SECONDS
    # Stale jars from an older neo4j.version would end up on the classpath: start clean.
    rm -rf "$TARGET_DIR/lib"
    mkdir -p "$TARGET_DIR"
    local build_log="$TARGET_DIR/mvn-build.log"
    if ! (cd "$SCRIPT_DIR" && mvn -q -B -ntp -Dstyle.color=never package -DskipTests </dev/null >"$build_log" 2>&1); then
        echo "----- $build_log -----" >&2
        tail -n 80 "$build_log" >&2 || true
        die "Maven build failed"
    fi
    touch "$BUILD_STAMP"
    say "build done in $((SECONDS - t0)) s"
}

with_lock() {
    # Serialise concurrent start/stop calls (e.g. parallel test workers).
    mkdir -p "$NEO4J_HOME_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCK_FILE"
        flock 9
    fi
}

wait_until_ready() {
    local pid="$1" t0="$2"
    local deadline=$((t0 + NEO4J_START_TIMEOUT))
    while true; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "neo4j.sh: error: Neo4j process $pid exited during startup" >&2
            show_log_tail
            rm -f "$PID_FILE"
            exit 1
        fi
        if grep -q "^$FAILED_MARKER" "$LOG_FILE" 2>/dev/null; then
            echo "neo4j.sh: error: Neo4j failed to start" >&2
            show_log_tail
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        if grep -q "^$READY_MARKER" "$LOG_FILE" 2>/dev/null && port_open; then
            say "ready after $((SECONDS - t0)) s: $(grep "^$READY_MARKER" "$LOG_FILE" | tail -n 1)"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "neo4j.sh: error: Neo4j not ready after ${NEO4J_START_TIMEOUT} s; killing pid $pid" >&2
            show_log_tail
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.5
    done
}

do_stop() {
    local pid
    pid="$(read_pid)"
    if ! is_our_process "$pid"; then
        rm -f "$PID_FILE"
        say "not running"
        return 0
    fi
    say "stopping Neo4j (pid $pid)..."
    kill -TERM "$pid" 2>/dev/null || true
    local t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS - t0 >= NEO4J_STOP_TIMEOUT)); then
            say "still running after ${NEO4J_STOP_TIMEOUT} s, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.5
    done
    rm -f "$PID_FILE"
    say "stopped"
}

do_start() {
    local fresh="${NEO4J_FRESH:-0}"
    local arg
    for arg in "$@"; do
        case "$arg" in
            --fresh) fresh=1 ;;
            *) die "unknown option for start: $arg" ;;
        esac
    done

    local pid
    pid="$(read_pid)"
    if is_our_process "$pid"; then
        if [[ "$fresh" == 1 ]]; then
            say "--fresh given while running: stopping first"
            do_stop
        elif port_open; then
            say "already running (pid $pid) on bolt://127.0.0.1:${NEO4J_BOLT_PORT}"
            return 0
        else
            say "process $pid is up but Bolt is not answering yet; waiting"
            wait_until_ready "$pid" "$SECONDS"
            return 0
        fi
    fi
    rm -f "$PID_FILE"

    if port_open; then
        die "127.0.0.1:${NEO4J_BOLT_PORT} is already in use by another process (set NEO4J_BOLT_PORT?)"
    fi

    if [[ "$fresh" == 1 ]]; then
        say "--fresh: removing $NEO4J_HOME_DIR/data"
        rm -rf "$NEO4J_HOME_DIR/data"
    fi

    if needs_build; then
        do_build
    fi
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (need Java 17+)"

    mkdir -p "$NEO4J_HOME_DIR"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
    : >"$LOG_FILE"

    local setsid_cmd=()
    command -v setsid >/dev/null 2>&1 && setsid_cmd=(setsid)
    local extra_opts=()
    # shellcheck disable=SC2206  # intentional word splitting of user-supplied options
    [[ -n "$NEO4J_JAVA_OPTS" ]] && extra_opts=($NEO4J_JAVA_OPTS)

    local t0=$SECONDS
    NEO4J_BOLT_PORT="$NEO4J_BOLT_PORT" \
    NEO4J_HOME_DIR="$NEO4J_HOME_DIR" \
    NEO4J_PAGECACHE="$NEO4J_PAGECACHE" \
    NEO4J_PID_FILE="$PID_FILE" \
        "${setsid_cmd[@]}" nohup "$JAVA" "${JVM_OPTS[@]}" "${extra_opts[@]}" \
        -cp "$TARGET_DIR/classes:$TARGET_DIR/lib/*" "$MAIN_CLASS" \
        </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    say "started pid $pid (home $NEO4J_HOME_DIR, log $LOG_FILE); waiting up to ${NEO4J_START_TIMEOUT} s"
    wait_until_ready "$pid" "$t0"
}

# `neo4j-admin database import full` from the jars the launcher already has (neo4j-import-tool
# and neo4j-command-line come with org.neo4j:neo4j), into this home's `neo4j` database.
do_import() {
    local dir="" overwrite=0 arg
    for arg in "$@"; do
        case "$arg" in
            --overwrite) overwrite=1 ;;
            -*) die "unknown option for import: $arg" ;;
            *) [[ -z "$dir" ]] || die "import takes one directory"; dir="$arg" ;;
        esac
    done
    [[ -n "$dir" ]] || die "usage: neo4j.sh import DIR [--overwrite]"
    [[ -f "$dir/import.args" ]] || die "$dir/import.args not found: write DIR with 'tracegraph export-neo4j-import'"
    if is_our_process "$(read_pid)"; then
        die "Neo4j is running on this home ($NEO4J_HOME_DIR): stop it first (the importer writes the store offline)"
    fi
    if needs_build; then
        do_build
    fi
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (need Java 17+)"
    local conf_dir="$NEO4J_HOME_DIR/conf"
    mkdir -p "$conf_dir" "$NEO4J_HOME_DIR/logs"
    [[ -f "$conf_dir/neo4j.conf" ]] || : >"$conf_dir/neo4j.conf"
    local extra=()
    [[ "$overwrite" == 1 ]] && extra+=(--overwrite-destination)
    [[ "${NEO4J_IMPORT_VERBOSE:-0}" == 1 ]] && extra+=(--verbose)
    local t0=$SECONDS
    say "importing $dir into $NEO4J_HOME_DIR (database neo4j)"
    # The paths in import.args are relative to DIR; picocli expands @file arguments.
    local db_dir="$NEO4J_HOME_DIR/data/databases/neo4j" fresh_db=1
    [[ -n "$(ls -A "$db_dir" 2>/dev/null)" ]] && fresh_db=0
    (cd "$dir" && NEO4J_HOME="$NEO4J_HOME_DIR" NEO4J_CONF="$conf_dir" \
        "$JAVA" "-Xmx${NEO4J_IMPORT_HEAP:-1g}" -XX:+UseG1GC --enable-native-access=ALL-UNNAMED \
        --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
        --add-opens=java.base/java.lang=ALL-UNNAMED \
        -cp "$TARGET_DIR/classes:$TARGET_DIR/lib/*" org.neo4j.cli.AdminTool database import full neo4j \
        --report-file="$NEO4J_HOME_DIR/logs/import.report" \
        --max-off-heap-memory="${NEO4J_IMPORT_MEMORY:-2g}" "${extra[@]}" @import.args) || {
        # A failed import leaves store files a server must not start on: remove what it wrote
        # (a database that held data before is only touched with --overwrite, which replaced it).
        if [[ "$fresh_db" == 1 || "$overwrite" == 1 ]]; then
            rm -rf "$db_dir" "$NEO4J_HOME_DIR/data/transactions/neo4j"
        fi
        die "import failed (above; NEO4J_IMPORT_VERBOSE=1 shows the importer's reasons; a database that already holds data needs --overwrite)"
    }
    say "import done in $((SECONDS - t0)) s; start the server, the first open creates the constraints"
}

do_status() {
    local pid
    pid="$(read_pid)"
    if is_our_process "$pid"; then
        if port_open; then
            say "running (pid $pid) on bolt://127.0.0.1:${NEO4J_BOLT_PORT}, home $NEO4J_HOME_DIR"
            return 0
        fi
        say "process $pid alive but Bolt port ${NEO4J_BOLT_PORT} not answering (starting or stuck?)"
        return 1
    fi
    say "not running"
    return 3
}

usage() {
    cat <<EOF
usage: $0 start [--fresh] | stop | status | restart [--fresh] | build | import DIR [--overwrite]
  env: NEO4J_BOLT_PORT (7687), NEO4J_HOME_DIR (scripts/neo4j/.data),
       NEO4J_START_TIMEOUT (180), NEO4J_STOP_TIMEOUT (60), NEO4J_HEAP (1g),
       NEO4J_PAGECACHE (512m), NEO4J_FRESH (0), NEO4J_JAVA_OPTS, JAVA_HOME / JAVA,
       NEO4J_IMPORT_HEAP (1g), NEO4J_IMPORT_MEMORY (2g, the importer's off-heap memory),
       NEO4J_IMPORT_VERBOSE (0)
EOF
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start) with_lock; do_start "$@" ;;
    stop) with_lock; do_stop ;;
    restart) with_lock; do_stop; do_start "$@" ;;
    status) do_status ;;
    build) do_build ;;
    import) with_lock; do_import "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
