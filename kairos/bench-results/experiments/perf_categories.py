#!/usr/bin/env python3
"""Section J: bucket a `perf record` profile by category (see 2026-11-26-J-profiles.txt).

Usage: perf_categories.py PERF_DATA CPU_US_PER_TOKEN [PERF_DATA CPU_US ...]"""
import subprocess, sys, re, collections
def cats(path):
    out=subprocess.run(['perf','report','-i',path,'--no-children','-g','none','--sort','comm,dso,sym','--stdio','--percent-limit','0'],capture_output=True,text=True).stdout
    tot=collections.Counter(); thr=collections.Counter()
    for line in out.splitlines():
        m=re.match(r'\s+([\d.]+)%\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)',line)
        if not m: continue
        p=float(m.group(1)); comm=m.group(2); kind=m.group(4); sym=m.group(5).strip()
        thr[comm]+=p
        s=sym
        if kind=='k': c='kernel'
        elif re.search(r'ecp_|nistz|bignum|bn_|_mont|aes_|gcm|sha256|sha512|sha1_|aws_lc|CRYPTO|ecdsa|p256|ec_|rdrand|sha2::',s,re.I): c='crypto'
        elif re.search(r'^sqlite3|btree|Btree|pager|Pager|vdbe|Vdbe|wal[A-Z]|^pcache|pcache1|sqlite',s): c='sqlite'
        elif re.search(r'^(mi_|_mi_|malloc|_int_malloc|_int_free|cfree|free|realloc|_int_realloc|malloc_consolidate|unlink_chunk|__rdl_|__rust_alloc|__rust_dealloc|calloc|tcache|__libc_malloc|__libc_free)',s) or 'rdl_alloc' in s or 'rdl_dealloc' in s: c='allocator'
        elif re.search(r'^__mem|^memcpy|^memset|^memmove|^__strlen',s): c='memcpy/memset'
        else: c='other user'
        tot[c]+=p
    return tot,thr
for path,us in zip(sys.argv[1::2],sys.argv[2::2]):
    us=float(us); tot,thr=cats(path); s=sum(tot.values())
    print(path, 'total %.1f%%'%s)
    for k,v in tot.most_common(): print('   %-14s %5.1f%%  %6.1f us/token'%(k,100*v/s,us*v/s))
    print('   threads:', ', '.join('%s %.1f%%'%(k,100*v/s) for k,v in thr.most_common(4)))
