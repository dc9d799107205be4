#!/usr/bin/env bash
# Page benchmark: the same requests (hub dashboard, its fragments, the triage board) on SQLite
# and on PostgreSQL in one run, with the demo data, signed in as an operator; reports
# requests/s, p99 and the PostgreSQL / SQLite ratio, next to a static file of the dashboard's
# size served by the same server (the baseline). Appends a section to BENCHMARKS.md.
# Needs wrk (Debian: apt-get install wrk) and, for PostgreSQL, a server at $IHF_BENCH_PG.
# IHF_BENCH_BIN=path runs an already built binary instead of building this checkout
# (to compare two versions on the same machine in the same hour).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS=2
PG_SERVER="${IHF_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

if [ -n "${IHF_BENCH_BIN:-}" ]; then
    BIN=$IHF_BENCH_BIN
else
    cargo build --release --quiet --bin ihf
    BIN="${CARGO_TARGET_DIR:-target}/release/ihf"
fi
LABEL="${IHF_BENCH_LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r static "$WORK/static"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Runs wrk against $1 with the session cookie; prints "rps p99_ms".
measure() {
    local out rps p99
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $COOKIE" "${@:2}" "$1")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    # wrk prints 1.23ms / 456.78us / 1.02s
    p99=$(python3 -c "import sys; v=sys.argv[1]; print(round(float(v[:-2])/1000,2) if v.endswith('us') else (round(float(v[:-2]),2) if v.endswith('ms') else round(float(v[:-1])*1000,2)))" "$p99")
    echo "$rps $p99"
}

# What is measured, in order: "path|label|header" (header optional).
TARGETS=(
    "/hubs/checkout|dashboard, full page|"
    "/hubs/checkout|dashboard, page content (htmx)|HX-Request: true"
    "/hubs/checkout/widgets-panel|widgets fragment|HX-Request: true"
    "/hubs/checkout/signals|signals fragment|HX-Request: true"
    "/hubs/checkout/feed|feed fragment (20 rows)|HX-Request: true"
    "/hubs/checkout/triage|triage board, full page (50 rows)|"
)

# Serves the demo on database $2, signs in as the operator and measures every target;
# writes "label|rps|p99" lines to $WORK/$1.rows (the static baseline first).
run_backend() {
    local name=$1 url=$2 port log
    port=$(free_port)
    log="$WORK/$name.log"
    IHF_BIND="127.0.0.1:$port" DATABASE_URL="$url" IHF_SEED_DEMO=true IHF_STATIC_DIR="$WORK/static" IHF_LOG=warn "$BIN" serve >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
    local password
    password=$(awk '$1=="olga" {print $2}' "$log")
    local base="http://127.0.0.1:$port"
    local jar="$WORK/jar-$name"
    local csrf
    csrf=$(curl -s -c "$jar" -b "$jar" "$base/login" | grep -o 'name="csrf_token" value="[^"]*"' | sed 's/.*value="//;s/"$//')
    curl -s -c "$jar" -b "$jar" -o /dev/null -d "handle=olga&password=$password&csrf_token=$csrf&next=/" "$base/login"
    COOKIE=$(awk '$6=="ihf_session" {print "ihf_session=" $7}' "$jar")
    # The baseline: a static file as large as the full dashboard page.
    local size
    size=$(curl -s -H "Cookie: $COOKIE" "$base/hubs/checkout" | wc -c)
    head -c "$size" /dev/zero | tr '\0' 'x' > "$WORK/static/baseline.html"
    echo "static file of the dashboard's size ($size bytes), baseline|$(measure "$base/static/baseline.html" | tr ' ' '|')" >"$WORK/$name.rows"
    for target in "${TARGETS[@]}"; do
        IFS='|' read -r path label header <<<"$target"
        local result
        if [ -n "$header" ]; then result=$(measure "$base$path" -H "$header"); else result=$(measure "$base$path"); fi
        echo "\`$path\` $label|$(tr ' ' '|' <<<"$result")" >>"$WORK/$name.rows"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Static files against the dashboard, one server, one run, shipped defaults (assets compiled into
# the binary, served from memory): 32 connections for throughput, one connection for the time a
# request takes; then a file read per request through the IHF_STATIC_DIR override, on one
# connection, to tell file IO apart from the cost of the response itself.
wrk_row() { # label connections url [headers…] → "| label | c | rps | avg ms | p99 ms |"
    local label=$1 c=$2 url=$3 out rps avg p99
    shift 3
    out=$(wrk -t"$(( c < THREADS ? c : THREADS ))" -c"$c" -d"$DURATION" --latency "$@" "$url")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    avg=$(awk '$1=="Latency" {print $2; exit}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    to_ms() { python3 -c "import sys; v=sys.argv[1]; print(round(float(v[:-2])/1000,3) if v.endswith('us') else (round(float(v[:-2]),3) if v.endswith('ms') else round(float(v[:-1])*1000,3)))" "$1"; }
    echo "| $label | $c | $rps | $(to_ms "$avg") | $(to_ms "$p99") |"
}
static_section() {
    local port base log pid jar csrf password cookie v
    port=$(free_port); base="http://127.0.0.1:$port"; log="$WORK/static.log"
    IHF_BIND="127.0.0.1:$port" DATABASE_URL="sqlite://$WORK/static.sqlite3" IHF_SEED_DEMO=true IHF_LOG=warn "$BIN" serve >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
    password=$(awk '$1=="olga" {print $2}' "$log"); jar="$WORK/jar-static"
    csrf=$(curl -s -c "$jar" -b "$jar" "$base/login" | grep -o 'name="csrf_token" value="[^"]*"' | sed 's/.*value="//;s/"$//')
    curl -s -c "$jar" -b "$jar" -o /dev/null -d "handle=olga&password=$password&csrf_token=$csrf&next=/" "$base/login"
    cookie=$(awk '$6=="ihf_session" {print "ihf_session=" $7}' "$jar")
    v=$(curl -s "$base/login" | grep -o 'app.css?v=[0-9a-f]*' | head -1)
    {
        wrk_row "\`/hubs/checkout\` dashboard, signed in" "$CONNECTIONS" "$base/hubs/checkout" -H "Cookie: $cookie"
        wrk_row "\`/static/$v\` (20 KB, identity)" "$CONNECTIONS" "$base/static/$v"
        wrk_row "\`/static/$v\` (brotli)" "$CONNECTIONS" "$base/static/$v" -H "Accept-Encoding: gzip, deflate, br"
        wrk_row "\`/static/$v\` (20 KB, identity)" 1 "$base/static/$v"
        wrk_row "\`/static/$v\` (brotli)" 1 "$base/static/$v" -H "Accept-Encoding: gzip, deflate, br"
    } >"$WORK/static.rows"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    port=$(free_port); base="http://127.0.0.1:$port"
    IHF_BIND="127.0.0.1:$port" DATABASE_URL="sqlite://$WORK/static.sqlite3" IHF_STATIC_DIR="$PWD/static" IHF_LOG=warn "$BIN" serve >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
    wrk_row "\`/static/app.css\` via IHF_STATIC_DIR (read per request)" 1 "$base/static/app.css" >>"$WORK/static.rows"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    {
        echo
        echo "### Static files vs the dashboard — $(date -u +%Y-%m-%d), same run, load $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        echo "Release build, shipped defaults (assets compiled in), SQLite demo; wrk, $DURATION per row."
        echo
        echo "| request | connections | requests/s | avg ms | p99 ms |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        cat "$WORK/static.rows"
    } >>BENCHMARKS.md
}
# BENCH_ONLY_STATIC=1: this section alone.
if [ "${BENCH_ONLY_STATIC:-}" = 1 ]; then static_section; tail -12 BENCHMARKS.md; exit 0; fi

run_backend sqlite "sqlite://$WORK/bench.sqlite3"
PG_DB="ihf_bench_$$"
psql "$PG_SERVER" -qc "CREATE DATABASE $PG_DB"
run_backend postgres "${PG_SERVER%/*}/$PG_DB"
psql "$PG_SERVER" -qc "DROP DATABASE $PG_DB WITH (FORCE)"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo
    echo "## Pages, SQLite and PostgreSQL — $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"
    echo
    echo "\`bash bench/pages.sh\` (\`just bench\`) at \`$LABEL\`: release build, demo data, signed in as an operator;"
    echo "wrk, $THREADS threads, $CONNECTIONS connections, $DURATION per row; server, PostgreSQL $(psql "$PG_SERVER" -Atc 'SHOW server_version' | cut -d' ' -f1) and wrk share the machine."
    echo "Load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER. Target: PostgreSQL ≥ 0.7× SQLite for the dashboard, the feed fragment and the triage board."
    echo
    echo "| request | SQLite req/s | SQLite p99 ms | PostgreSQL req/s | PostgreSQL p99 ms | PG / SQLite |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    paste -d'|' "$WORK/sqlite.rows" "$WORK/postgres.rows" | while IFS='|' read -r label s_rps s_p99 _ p_rps p_p99; do
        ratio=$(python3 -c "print(f'{float(\"$p_rps\")/float(\"$s_rps\"):.2f}')")
        echo "| $label | $s_rps | $s_p99 | $p_rps | $p_p99 | **$ratio** |"
    done
} | tee -a BENCHMARKS.md
static_section
tail -12 BENCHMARKS.md
