#!/usr/bin/env python3
"""An HTTP fault proxy on the loopback between dcpp and the S3 test server.

  fault_proxy.py <upstream http://127.0.0.1:port> <state file> <rule>...

Forwards each request to the upstream server, except where a rule says
otherwise. A rule is "METHOD:regex:action:count" (count requests whose
method and path+query match take the action, the rest pass; count 0 =
every one). Actions:
  500, 503           answer that status (503 with S3's SlowDown code), forward nothing
  reset_request      read half the request body, then reset the connection
  reset_response     forward, then send the head and half the body, then reset
  lost_response      forward, then reset before answering (the request took effect)
  stall              read the request, then send nothing for 30 s
Writes "port <port>" and "pid <pid>" to the state file once it listens, and
one line per injected fault to "<state file>.log".
Standard library only; listens on 127.0.0.1 only; each connection is handled
on its own thread and every loop is bounded by the socket timeouts.
"""
import http.client
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time

UPSTREAM = None
RULES = []
LOG = None
LOCK = threading.Lock()


class Rule:
    def __init__(self, text):
        method, regex, action, count = text.split(":", 3)
        self.method, self.regex, self.action, self.left = method, re.compile(regex), action, int(count)
        self.forever = self.left == 0

    def take(self, method, target):
        if method != self.method or not self.regex.search(target):
            return False
        if self.forever:
            return True
        if self.left > 0:
            self.left -= 1
            return True
        return False


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(60)
        f = sock.makefile("rb")
        while True:
            line = f.readline(65536)
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers = []
            while True:
                h = f.readline(65536)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, value = h.decode("latin-1").split(":", 1)
                headers.append((name.strip(), value.strip()))
            length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
            action = None
            with LOCK:
                for rule in RULES:
                    if rule.take(method, target):
                        action = rule.action
                        with open(LOG, "a") as log:
                            log.write(f"{action} {method} {target}\n")
                        break
            if action == "reset_request":
                f.read(length // 2)
                reset(sock)
                return
            body = f.read(length) if length else b""
            if action in ("500", "503"):
                code = "SlowDown" if action == "503" else "InternalError"
                payload = f"<Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error>".encode()
                sock.sendall(f"HTTP/1.1 {action} Injected\r\nContent-Type: application/xml\r\n"
                             f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                continue
            if action == "stall":
                time.sleep(30)
                reset(sock)
                return
            conn = http.client.HTTPConnection(UPSTREAM[0], UPSTREAM[1], timeout=60)
            fwd = {n: v for n, v in headers if n.lower() not in ("connection", "expect")}
            conn.request(method, target, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if action == "lost_response":
                reset(sock)
                return
            head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
            for n, v in resp.getheaders():
                # A HEAD answer keeps the object's length and has no body.
                if n.lower() not in ("transfer-encoding", "connection") and (method == "HEAD" or n.lower() != "content-length"):
                    head += f"{n}: {v}\r\n"
            if method != "HEAD":
                head += f"Content-Length: {len(data)}\r\n"
            head += "\r\n"
            if action == "reset_response":
                sock.sendall(head.encode("latin-1") + data[: len(data) // 2])
                time.sleep(0.05)
                reset(sock)
                return
            sock.sendall(head.encode("latin-1") + data)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global UPSTREAM, RULES, LOG
    upstream, state = sys.argv[1], sys.argv[2]
    LOG = state + ".log"
    host, port = upstream.split("//", 1)[1].split(":")
    UPSTREAM = (host, int(port))
    RULES = [Rule(r) for r in sys.argv[3:]]
    server = Server(("127.0.0.1", 0), Handler)
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"port {server.server_address[1]}\npid {os.getpid()}\n")
    os.rename(tmp, state)
    server.serve_forever()


if __name__ == "__main__":
    main()
