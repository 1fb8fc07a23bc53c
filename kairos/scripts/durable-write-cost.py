#!/usr/bin/env python3
"""CPU cost of one durable write on this machine, by method (kairos/BENCH.md, section H).

    taskset -c 0 python3 kairos/scripts/durable-write-cost.py [DIR]

Writes N times to a preallocated 64 MiB file in DIR (default: the current directory; use the
file system the ledger lives on) and prints the process CPU time (user + system) and the wall
time per durable write. Every method leaves the data on stable storage before the call returns.
Not tried: io_uring and Linux AIO.
"""
import mmap
import os
import resource
import sys
import time

N = 2000
SIZE = 64 << 20


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def run(path, name, flags, nbytes, sync, rwf=0):
    fd = os.open(path, os.O_WRONLY | flags)
    # start every method with none of the file cached: a direct write over cached pages also
    # pays for invalidating them
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    buf = mmap.mmap(-1, nbytes)  # page-aligned, as O_DIRECT requires
    buf.write(b"x" * nbytes)
    (u0, s0), t0 = cpu(), time.monotonic()
    off = 0
    for _ in range(N):
        os.pwritev(fd, [buf], off, rwf)
        if sync:
            os.fdatasync(fd)
        off = (off + nbytes) % SIZE
    (u1, s1), t1 = cpu(), time.monotonic()
    os.close(fd)
    us = lambda x: x / N * 1e6  # noqa: E731
    print(f"{name:<30} cpu {us(u1 - u0 + s1 - s0):6.1f} µs (user {us(u1 - u0):5.1f}, "
          f"system {us(s1 - s0):5.1f})   wall {us(t1 - t0):6.1f} µs")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    path = os.path.join(directory, "durable-write-cost.bin")
    with open(path, "wb") as f:  # real zeros: no write below changes the file's metadata
        f.write(b"\0" * SIZE)
        f.flush()
        os.fsync(f.fileno())
    try:
        run(path, "buffered 4 KiB + fdatasync", 0, 4096, True)
        run(path, "buffered 16 KiB + fdatasync", 0, 16384, True)
        run(path, "O_DSYNC 4 KiB", os.O_DSYNC, 4096, False)
        run(path, "O_DIRECT|O_DSYNC 4 KiB", os.O_DIRECT | os.O_DSYNC, 4096, False)
        run(path, "O_DIRECT|O_DSYNC 8 KiB", os.O_DIRECT | os.O_DSYNC, 8192, False)
        run(path, "O_DIRECT 4 KiB + fdatasync", os.O_DIRECT, 4096, True)
        run(path, "pwritev2 RWF_DSYNC 4 KiB", 0, 4096, False, os.RWF_DSYNC)
        run(path, "O_DIRECT pwritev2 RWF_DSYNC", os.O_DIRECT, 4096, False, os.RWF_DSYNC)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
