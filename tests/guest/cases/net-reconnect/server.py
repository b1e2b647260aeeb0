#!/usr/bin/env python3
"""server.py DIR PORT: on 10.0.0.1, send DIR/blob to every connection on
PORT and DIR/state to every connection on PORT + 1, then close."""
import os
import socketserver
import sys
import threading


def handler(path):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            with open(path, "rb") as f:
                self.request.sendall(f.read())
    return Handler


def main():
    www, port = sys.argv[1], int(sys.argv[2])
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    servers = [socketserver.ThreadingTCPServer(("10.0.0.1", port + i),
                                               handler(os.path.join(www, n)))
               for i, n in enumerate(("blob", "state"))]
    threading.Thread(target=servers[1].serve_forever, daemon=True).start()
    servers[0].serve_forever()


main()
