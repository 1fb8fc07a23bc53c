#!/bin/bash
# Section K: kairos serve at CONNS connections with per-thread figures over the measured window (scratch script kept with its output).
# usage: sv.sh CONNS DUR [BIN]   serve pinned core 0, bench core 1, per-thread stats over the run
# It ran an experiment build where KAIROS_TMP_INLINE=1 selected inline commit; with the final build, add
# --ledger-commit inline|writer-thread to the second `serve` line instead.
B=/work/target-bench/release
BIN=${3:-$B/kairos}
D=/tmp/sv-data-$$
rm -rf $D
snap() { # OUT: per-thread counters of $P
python3 - $P snap "$1" <<'PY'
import os,sys,json
pid=sys.argv[1];out={}
for t in os.listdir(f'/proc/{pid}/task'):
    s=open(f'/proc/{pid}/task/{t}/stat').read(); comm=s[s.index('(')+1:s.rindex(')')]; f=s[s.rindex(')')+2:].split()
    st=dict(l.split(':\t') for l in open(f'/proc/{pid}/task/{t}/status').read().splitlines() if ':\t' in l)
    io=dict(l.split(': ') for l in open(f'/proc/{pid}/task/{t}/io').read().splitlines())
    out[t]=dict(comm=comm,u=int(f[11]),s=int(f[12]),vcs=int(st['voluntary_ctxt_switches']),ncs=int(st['nonvoluntary_ctxt_switches']),sr=int(io['syscr']),sw=int(io['syscw']),wb=int(io['write_bytes']))
json.dump(out,open(sys.argv[3],'w'))
PY
}
$BIN serve --data-dir $D --listen 127.0.0.1:18443 >/dev/null 2>&1 & P=$!; sleep 1.5; kill $P; wait $P 2>/dev/null
taskset -c 0 $BIN serve --data-dir $D --listen 127.0.0.1:18443 --workers 1 >/dev/null 2>&1 & P=$!
sleep 1
taskset -c 1 $B/kairos bench --data-dir $D --target https://127.0.0.1:18443 --mode keepalive --connections $1 --duration $2 --warmup 2 --server-pid $P --json > /tmp/sv.json &
BP=$!
sleep 2.2
snap /tmp/sv-a.json
python3 -c "import sqlite3;c=sqlite3.connect('file:$D/ledger.sqlite?mode=ro',uri=True);print(c.execute('select count(*) from records').fetchone()[0],c.execute('select count(*) from seals').fetchone()[0])" > /tmp/sv-c1 2>/dev/null
sleep $(python3 -c "print($2-0.4)")
snap /tmp/sv-b.json
python3 -c "import sqlite3;c=sqlite3.connect('file:$D/ledger.sqlite?mode=ro',uri=True);print(c.execute('select count(*) from records').fetchone()[0],c.execute('select count(*) from seals').fetchone()[0])" > /tmp/sv-c2 2>/dev/null
wait $BP; kill $P; wait $P 2>/dev/null
python3 - <<'PY'
import json
d=json.load(open('/tmp/sv.json'))
a=json.load(open('/tmp/sv-a.json'));b=json.load(open('/tmp/sv-b.json'))
r1,s1=map(int,open('/tmp/sv-c1').read().split()); r2,s2=map(int,open('/tmp/sv-c2').read().split())
n=r2-r1
print('conns',d['connections'],'req/s %.0f'%d['req_per_sec'],'p50 %.2f ms'%(d['latency_us']['p50']/1000),'cpu/req %.1f'%d['server_cpu_per_request_us'],'err',d['errors'],'| records %d commits %d -> %.1f per commit'%(n,s2-s1,n/max(1,s2-s1)))
for t,x in b.items():
    y=a.get(t)
    if not y: continue
    du=(x['u']-y['u'])*10000/n; ds=(x['s']-y['s'])*10000/n
    if du+ds==0: continue
    print('  %-18s user %5.1f sys %5.1f us/rec  vcs %.2f ncs %.2f syscr %.2f syscw %.2f wbytes %.0f /rec'%(x['comm'],du,ds,(x['vcs']-y['vcs'])/n,(x['ncs']-y['ncs'])/n,(x['sr']-y['sr'])/n,(x['sw']-y['sw'])/n,(x['wb']-y['wb'])/n))
PY
rm -rf $D
