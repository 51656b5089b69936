"""Load generation shared by scripts/measure-server and scripts/measure-cluster: tokens, check-ins
and resumable uploads against `uplink serve` on loopback, run from many threads released
together, and real frames made by `uplink encode`. Needs numpy. Not a client library (that is
python/uplink); these helpers fail loudly on anything but the expected answer."""
import base64, hashlib, hmac, http.client, json, os, subprocess, sys, threading, time

import numpy as np

threading.stack_size(256 << 10)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret, client):
    """An HS256 JWT for `client`, as `uplink token` mints it (docs/server.md)."""
    now = int(time.time())
    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps({"exp": now + 86400, "iat": now, "sub": client}, separators=(",", ":"), sort_keys=True).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def check_in(port, tok):
    """POST /v1/checkin; the client must be selected."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/checkin", headers={"Authorization": "Bearer " + tok})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    assert r.status == 200 and body["status"] == "selected", (r.status, body)


def upload(port, tok, frame, round=1):
    """Creation + one append of the whole frame on one keep-alive connection; must be accepted."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    h = {"Authorization": "Bearer " + tok, "Upload-Draft-Interop-Version": "8"}
    c.request("POST", f"/v1/rounds/{round}/updates", headers={**h, "Upload-Complete": "?0", "Upload-Length": str(len(frame))})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
    c.request("PATCH", r.getheader("Location"), body=frame,
              headers={**h, "Content-Type": "application/partial-upload", "Upload-Offset": "0", "Upload-Complete": "?1"})
    r = c.getresponse(); body = json.loads(r.read())
    c.close()
    assert r.status == 200 and body["status"] == "accepted", (r.status, body)


def get_json(port, path, tok):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path, headers={"Authorization": "Bearer " + tok})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, json.loads(body) if body else None


def run_all(fn, items, threads):
    """Runs fn(*item) for every item on `threads` threads released together; returns seconds."""
    errors, barrier = [], threading.Barrier(threads + 1)
    chunks = [items[i::threads] for i in range(threads)]

    def work(chunk):
        barrier.wait()
        for it in chunk:
            try:
                fn(*it)
            except Exception as e:
                errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(ch,)) for ch in chunks]
    for t in ts: t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in ts: t.join()
    elapsed = time.monotonic() - t0
    if errors: sys.exit(f"{len(errors)} failures, first: {errors[0]}")
    return elapsed


def make_frames(uplink, rng, name, n, pipeline, count, round=1):
    """Writes the starting model `name`.npy (n float32) and returns `count` distinct frames of
    `pipeline` for `round` (the server counts byte-identical frames once): heavy-tailed updates
    with 30% exact zeros, encoded by `uplink encode`, two encodes at a time."""
    np.save(f"{name}.npy", (rng.standard_normal(n) * 0.05).astype(np.float32))
    os.makedirs(f"{name}-frames", exist_ok=True)
    slots = {}  # update file → the encode reading it

    def done(slot):
        if slot in slots and slots.pop(slot).wait() != 0: sys.exit("uplink encode failed")

    for j in range(count):
        slot = j % 2
        done(slot)
        u = rng.standard_t(3, n).astype(np.float32) * 0.01
        u[rng.random(n) < 0.3] = 0
        np.save(f"u{slot}.npy", u)
        slots[slot] = subprocess.Popen([uplink, "encode", "--pipeline", pipeline, "--in", f"u{slot}.npy", "--out", f"{name}-frames/{j:04d}.upl",
                                        "--round", str(round), "--samples", str(1 + j % 9)], stdout=subprocess.DEVNULL)
    for slot in list(slots): done(slot)
    frames = [open(f"{name}-frames/{j:04d}.upl", "rb").read() for j in range(count)]
    subprocess.run(["rm", "-rf", f"{name}-frames"], check=True)
    return frames


def cpu_seconds(pids):
    """User + system CPU seconds the processes `pids` have used so far (dead ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def status_kib(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"): return int(line.split()[1])
