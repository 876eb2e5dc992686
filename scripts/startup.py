#!/usr/bin/env python3
"""Start-up to ready and idle RSS of the release binary with the shipped
modbridge.toml and rules/ (dry run, in-memory dedupe).

    cargo build --release && python3 scripts/startup.py [RUNS]
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, "target", "release", "modbridge")
times, rss = [], []
for _ in range(runs):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, MODBRIDGE_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn")
    env.pop("REDIS_URL", None)
    t = time.monotonic()
    p = subprocess.Popen([binary, "serve", "--dry-run"], cwd=root, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                break
        except Exception:
            time.sleep(0.001)
        if time.monotonic() - t > 10:
            sys.exit("not ready within 10 s")
    times.append((time.monotonic() - t) * 1000)
    time.sleep(1)
    with open(f"/proc/{p.pid}/status") as f:
        rss.append(int(next(l for l in f if l.startswith("VmRSS")).split()[1]) / 1024)
    p.terminate()
    p.wait()
times.sort()
rss.sort()
print(f"start-up to ready: median {times[len(times)//2]:.1f} ms, max {times[-1]:.1f} ms over {runs} runs")
print(f"idle RSS after 1 s: median {rss[len(rss)//2]:.1f} MB, max {rss[-1]:.1f} MB")
print(f"binary: {os.path.getsize(binary) / 1e6:.1f} MB ({binary})")
