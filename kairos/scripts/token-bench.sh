#!/usr/bin/env bash
# Server CPU per token, measured the way issue 3 asks: one server worker pinned to core 0, the
# load (`kairos bench`) pinned to core 1. See kairos/BENCH.md for what each figure means.
#
#   kairos/scripts/token-bench.sh [SERVER...]
#
# SERVER is `serve` (kairos serve as shipped: every token durably on the embedded ledger,
# committed inline), `serve-writer-thread` (the same with `--ledger-commit writer-thread`),
# `serve-distinct` (`serve`, loaded with one transaction certificate per connection instead of
# one for all: `kairos bench --certificates <connections>`), `serve-many` (`serve`, loaded with
# $MANY_CERTIFICATES transaction certificates, default 4096, each connection presenting the next
# of its share on every request, so that each certificate carries only a few tokens, as
# per-transaction certificates do; handshake mode only, skipped with keep-alive), `serve-svid`
# and `serve-svid-distinct` (`serve`, loaded with the workload's SVID instead of a transaction
# certificate: one for all, or one per connection),
# `token-path` (kairos/examples/token_path_server.rs: the same server with an in-memory audit
# log, a measuring harness only), `durable-floor` (kairos/examples/durable_floor_server.rs: the
# same server and ledger over the cheapest durable, sealed store we could build, a measuring
# harness only), `bare-durable` and `bare-durable-inline` (kairos/examples/bare_durable_server.rs:
# the token path plus one content-free 4 KiB durable write per group of tokens, batched by a writer
# thread or inline on the worker; a lower bound, not a ledger) or `peer` (any RFC 8705 server
# started by $PEER_CMD in $PEER_DIR, reached at $PEER_URL with $PEER_CERT/$PEER_KEY/$PEER_CACERT,
# client $PEER_CLIENT, scope $PEER_SCOPE; $PEER_CMD must exec the server itself, so that its pid
# is the one measured).
# Default: serve token-path.
#
# Environment: MODES (default "keepalive handshake"), CONNECTIONS (default "4 32"), RUNS
# (default 3), DURATION seconds per run (default 10), TARGET_DIR (default target/bench-release),
# OUT (JSON lines appended here; default /tmp/kairos-token-bench.jsonl), MANY_CERTIFICATES
# (for `serve-many`; default 4096).
# Runs are interleaved (server A, B, A, B, ...) so that drift in the machine hits all alike.
set -euo pipefail

cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || set -- serve token-path
MODES=${MODES:-keepalive handshake}
CONNECTIONS=${CONNECTIONS:-4 32}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
TARGET_DIR=${TARGET_DIR:-target/bench-release}
OUT=${OUT:-/tmp/kairos-token-bench.jsonl}
PORT=18443

command -v taskset >/dev/null || { echo "token-bench: needs taskset (util-linux)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "token-bench: needs two cores" >&2; exit 2; }

CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked -p kairos --bin kairos \
    --example token_path_server --example durable_floor_server --example bare_durable_server >&2
bin=$TARGET_DIR/release/kairos
harness=$TARGET_DIR/release/examples/token_path_server
floor=$TARGET_DIR/release/examples/durable_floor_server
bare=$TARGET_DIR/release/examples/bare_durable_server
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

start_server() { # name data_dir -> sets PID and URL, client args in CLIENT
    local name=$1 data=$2
    case $name in
        serve|serve-writer-thread|serve-distinct|serve-many|serve-svid|serve-svid-distinct)
            local commit=inline
            [ "$name" != serve-writer-thread ] || commit=writer-thread
            taskset -c 0 "$bin" serve --data-dir "$data" --listen 127.0.0.1:$PORT --workers 1 \
                --ledger-commit $commit >"$work/server.log" 2>&1 &
            PID=$!; URL=https://127.0.0.1:$PORT; CLIENT=(--data-dir "$data") ;;
        token-path) start_harness "$data" "$harness" ;;
        durable-floor) start_harness "$data" "$floor" ;;
        bare-durable) start_harness "$data" "$bare" thread ;;
        bare-durable-inline) start_harness "$data" "$bare" inline ;;
        peer)
            : "${PEER_CMD:?set PEER_CMD, PEER_URL, PEER_CERT, PEER_KEY, PEER_CACERT}"
            taskset -c 0 bash -c "cd '${PEER_DIR:-.}' && exec $PEER_CMD" >"$work/server.log" 2>&1 &
            PID=$!; URL=$PEER_URL
            CLIENT=(--data-dir "$data" --cert "$PEER_CERT" --key "$PEER_KEY"
                --cacert "$PEER_CACERT" --client-id "${PEER_CLIENT:-perf-client-1}"
                --scope "${PEER_SCOPE:-api:read}") ;;
        *) echo "token-bench: unknown server $name" >&2; exit 2 ;;
    esac
    wait_port "${URL##*:}"
}

start_harness() { # data_dir binary [arg] -> sets PID, URL, CLIENT
    # the data directory (CA, keys) is created by a first `kairos serve` start
    "$bin" serve --data-dir "$1" --listen 127.0.0.1:$PORT >"$work/server.log" 2>&1 &
    wait_port $PORT; kill $! && wait $! 2>/dev/null || true
    taskset -c 0 "$2" "$1" 127.0.0.1:$PORT "${@:3}" >"$work/server.log" 2>&1 &
    PID=$!; URL=https://127.0.0.1:$PORT; CLIENT=(--data-dir "$1")
}

wait_port() { # port
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "token-bench: server did not listen; log:" >&2; cat "$work/server.log" >&2; exit 1
}

printf '%-19s %-9s %5s %5s %9s %9s %9s %12s\n' server mode conns certs req/s p50_ms p99_ms \
    cpu_us/token
for mode in $MODES; do
    for conns in $CONNECTIONS; do
        for run in $(seq "$RUNS"); do
            for name in "$@"; do
                # a kept-alive connection presents one certificate: kairos bench refuses more
                [ "$name:$mode" != serve-many:keepalive ] || continue
                data=$work/data-$name-$run-$mode-$conns
                start_server "$name" "$data"
                case $name in
                    serve-distinct) spread=(--certificates "$conns") ;;
                    serve-many) spread=(--certificates "${MANY_CERTIFICATES:-4096}") ;;
                    serve-svid) spread=(--svid) ;;
                    serve-svid-distinct) spread=(--svid --certificates "$conns") ;;
                    *) spread=() ;;
                esac
                json=$(taskset -c 1 "$bin" bench "${CLIENT[@]}" "${spread[@]}" --target "$URL" \
                    --mode "$mode" --connections "$conns" --duration "$DURATION" \
                    --server-pid "$PID" --json)
                kill "$PID"; wait "$PID" 2>/dev/null || true
                python3 - "$name" "$json" "$run" "$OUT" <<'EOF'
import json, sys
d = json.loads(sys.argv[2])
with open(sys.argv[4], "a") as out:  # one compact JSON object per line
    out.write(json.dumps({"server": sys.argv[1], "run": int(sys.argv[3]), "result": d}) + "\n")
l = d["latency_us"]
print(f'{sys.argv[1]:<19} {d["mode"]:<9} {d["connections"]:>5} {d.get("certificates", 1):>5} '
      f'{d["req_per_sec"]:>9.0f} '
      f'{l["p50"]/1000:>9.2f} {l["p99"]/1000:>9.2f} {d["server_cpu_per_request_us"]:>12.1f}'
      + ('' if d["errors"] == 0 else f'  errors={d["errors"]}'))
EOF
            done
        done
    done
done
