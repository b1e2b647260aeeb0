#!/usr/bin/env python3
"""hmp.py SOCK COMMAND...: run HMP commands on a QEMU monitor socket
(-monitor unix:SOCK,server,nowait) and print what each one answers."""
import socket
import sys
import time


def read_prompt(s):
    buf = b""
    deadline = time.monotonic() + 30
    while not buf.endswith(b"(qemu) "):
        if time.monotonic() > deadline:
            raise SystemExit("hmp.py: no prompt from " + sys.argv[1])
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


def main():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[1])
    read_prompt(s)
    for cmd in sys.argv[2:]:
        s.sendall(cmd.encode() + b"\n")
        if cmd == "quit":
            # Until QEMU closes the monitor: closing first may drop the command.
            try:
                while s.recv(65536):
                    pass
            except (socket.timeout, ConnectionResetError):
                pass
            return
        out = read_prompt(s)
        # The monitor echoes the command line; drop it and the prompt.
        lines = out.replace("\r", "").split("\n")[1:-1]
        sys.stdout.write("\n".join(l for l in lines if l) + "\n")


main()
