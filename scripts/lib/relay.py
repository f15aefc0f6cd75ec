#!/usr/bin/env python3
"""A transfer's floor, for bench-backup.sh: copies SRC to DST through a Unix
stream socket between two processes, in 1 MiB pieces, as a download or an
import moves an archive (one process reads the file and sends, the other
receives and writes). Nothing else: no framing, no protocol.

  relay.py SRC DST [--sha256] [--fsync]

--sha256  the sending side takes the SHA-256 of every byte on a thread of
          its own while the pieces go (hashlib, OpenSSL's SHA-256), as the
          daemon does for a download and an import;
--fsync   the receiving side fsyncs DST before the copy counts, as
          berkutctl does for a download and the daemon for an import.

The socket's send buffer is raised to 4 MiB (as far as net.core.wmem_max
allows; 4 MiB on the benchmark machine), so the relay is not held up by the
default one. It is a reference for the work, not a bound: a program in C or
Rust with read-ahead could do the same a little faster.
Prints the seconds the copy took, from before the socket is made to after
the receiver has exited (Python's own start-up, 0.1 s and more here, is
not the copy's); exits non-zero if anything fails.
"""

import hashlib
import os
import queue
import socket
import sys
import threading
import time

PIECE = 1 << 20


def receive(sock, dst, fsync):
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = bytearray(PIECE)
    view = memoryview(buf)
    while True:
        n = sock.recv_into(view)
        if n == 0:
            break
        done = 0
        while done < n:
            done += os.write(fd, view[done:n])
    if fsync:
        os.fsync(fd)
    os.close(fd)


def send(sock, src, sha256):
    # Four buffers in turn, the hasher at most two pieces behind: the one
    # read into next is never one still being hashed.
    ring = [bytearray(PIECE) for _ in range(4)]
    pieces = queue.Queue(2)
    thread = None
    if sha256:
        hasher = hashlib.sha256()

        def take():
            while (piece := pieces.get()) is not None:
                hasher.update(piece)

        thread = threading.Thread(target=take)
        thread.start()
    with open(src, "rb", buffering=0) as f:
        turn = 0
        while n := f.readinto(ring[turn]):
            piece = memoryview(ring[turn])[:n]
            if thread is not None:
                pieces.put(piece)
            sock.sendall(piece)
            turn = (turn + 1) % len(ring)
    if thread is not None:
        pieces.put(None)
        thread.join()
    sock.shutdown(socket.SHUT_WR)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if len(args) != 2 or flags - {"--sha256", "--fsync"}:
        sys.exit(__doc__)
    src, dst = args
    started = time.monotonic()
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    pid = os.fork()
    if pid == 0:
        ours.close()
        try:
            receive(theirs, dst, "--fsync" in flags)
        except BaseException:
            os._exit(1)
        os._exit(0)
    theirs.close()
    send(ours, src, "--sha256" in flags)
    ours.close()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("relay.py: the receiving side failed")
    print(f"{time.monotonic() - started:.3f}")


if __name__ == "__main__":
    main()
