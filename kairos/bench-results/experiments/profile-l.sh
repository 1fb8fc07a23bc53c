#!/bin/bash
# Section L: profile a server while kairos bench drives it, with CERTS distinct client certificates
# (scratch script kept with its output, 2026-11-26-L-profiles.txt).
# Usage: [CERTS=N] profile-l.sh serve|token_path_server CONNS OUT  (release builds in /work/target-bench)
B=/work/target-bench/release
D=/tmp/pp-data; rm -rf $D
$B/kairos serve --data-dir $D --listen 127.0.0.1:18443 >/dev/null 2>&1 & P=$!; sleep 1.5; kill $P; wait $P 2>/dev/null
if [ "$1" = serve ]; then taskset -c 0 $B/kairos serve --data-dir $D --listen 127.0.0.1:18443 --workers 1 >/dev/null 2>&1 & P=$!
else taskset -c 0 $B/examples/$1 $D 127.0.0.1:18443 >/dev/null 2>&1 & P=$!; fi
sleep 1
taskset -c 1 $B/kairos bench --data-dir $D --target https://127.0.0.1:18443 --mode keepalive --connections $2 --certificates ${CERTS:-1} --duration 12 --server-pid $P --json > $3.json &
BP=$!; sleep 4
perf record -F 999 -p $P -o $3.data -- sleep 7 >/dev/null 2>&1
wait $BP; kill $P; wait $P 2>/dev/null
CPU=$(python3 -c "import json;d=json.load(open('$3.json'));print(d['server_cpu_per_request_us'])")
echo "$1 $2 cpu/req $CPU"
perf report -i $3.data --no-children -g none --sort sym 2>/dev/null | grep -v "^#" | grep % | awk -v c=$CPU '{p=$1; sub("%","",p); $1=""; printf "%6.2f %s\n", p*c/100, $0}' > $3.syms
