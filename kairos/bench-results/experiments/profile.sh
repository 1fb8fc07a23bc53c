#!/bin/bash
# Section J: profile a server while kairos bench drives it (scratch script kept with its output).
# Usage: profile.sh serve|token_path_server|durable_floor_server CONNS OUT  (release builds in /work/target-bench)
B=/work/target-bench/release
D=/tmp/pc-data; rm -rf $D
$B/kairos serve --data-dir $D --listen 127.0.0.1:18443 >/dev/null 2>&1 & P=$!; sleep 1.5; kill $P; wait $P 2>/dev/null
if [ "$1" = serve ]; then
  taskset -c 0 $B/kairos serve --data-dir $D --listen 127.0.0.1:18443 --workers 1 >/dev/null 2>&1 & P=$!
else
  taskset -c 0 $B/examples/$1 $D 127.0.0.1:18443 >/dev/null 2>&1 & P=$!
fi
sleep 1
taskset -c 1 $B/kairos bench --data-dir $D --target https://127.0.0.1:18443 --mode keepalive --connections $2 --duration 14 --server-pid $P --json > $3.json &
BP=$!
sleep 3
perf record -F 999 -p $P -o $3.data -- sleep 9 >/dev/null 2>&1
wait $BP; kill $P; wait $P 2>/dev/null
python3 -c "import json;d=json.load(open('$3.json'));print('$1',d['connections'],'req/s %.0f'%d['req_per_sec'],'cpu/req %.1f'%d['server_cpu_per_request_us'],'err',d['errors'])"
