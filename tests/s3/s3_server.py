#!/usr/bin/env python3
"""Starts and stops the S3-compatible server the s3 tests run against.

  s3_server.py start <state file> <venv>   moto's server on 127.0.0.1 at a free
                                          port, with the bucket "dcpp-test"
  s3_server.py stop <state file>

start writes "endpoint http://127.0.0.1:<port>" and "pid <pid>" to the state
file, or "skip <reason>" when the venv (scripts/s3-venv.sh) has no moto: the
tests then skip, saying why. Standard library only; loopback only.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(state, venv):
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python) or subprocess.call([python, "-c", "import moto.server"],
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
        with open(state, "w") as f:
            f.write(f"skip no moto server in {venv} (make s3-venv, or scripts/s3-venv.sh {venv}, creates it)\n")
        print(f"s3_server: no moto in {venv}: the S3 tests will skip")
        return 0
    port = free_port()
    log = open(state + ".log", "w")
    proc = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint + "/dcpp-test", method="PUT"), timeout=2).read()
            break
        except Exception as e:  # not up yet
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                print(f"s3_server: moto did not start ({e}); see {state}.log", file=sys.stderr)
                return 1
            time.sleep(0.2)
    with open(state, "w") as f:
        f.write(f"endpoint {endpoint}\npid {proc.pid}\n")
    print(f"s3_server: moto at {endpoint} (pid {proc.pid})")
    return 0


def stop(state):
    try:
        lines = dict(l.split(" ", 1) for l in open(state).read().splitlines() if " " in l)
    except FileNotFoundError:
        return 0
    pid = int(lines.get("pid", "0"))
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.remove(state)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "start":
        sys.exit(start(sys.argv[2], sys.argv[3]))
    sys.exit(stop(sys.argv[2]))
