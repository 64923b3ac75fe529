#!/usr/bin/env python3
"""Load test for `affect serve` (standard library only; ffmpeg makes the test picture).

Starts the server (or uses a running one with --url and --pid), then for --seconds runs:
  * --clients HTTP clients posting a 640x480 JPEG to /v1/faces in a loop,
  * --streams WebSocket clients sending the same JPEG as frames on /v1/stream,
  * one client posting garbage bodies, each of which must be answered 4xx,
and samples the server's resident memory every second. Prints requests/s, latency percentiles, errors and
the RSS curve; with the server it started, ends it with SIGTERM and checks it exits 0.

Traffic goes to the loopback address only, and every loop is bounded by --seconds.

  Tools/loadtest.py --affect .build/release/affect --seconds 60 --clients 16 --streams 4
"""
import argparse, base64, http.client, json, os, random, signal, socket, struct, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def make_jpeg(path):
    """A 640x480 JPEG of the committed group photo (faces in it), as a camera frame would be."""
    src = os.path.join(ROOT, "Tests/Fixtures/media/group.png")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-vf", "scale=640:480", "-q:v", "3", path], check=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat = []
        self.codes = {}
        self.errors = []

    def add(self, seconds, code):
        with self.lock:
            self.lat.append(seconds)
            self.codes[code] = self.codes.get(code, 0) + 1

    def error(self, what):
        with self.lock:
            self.codes["error"] = self.codes.get("error", 0) + 1
            if len(self.errors) < 10:
                self.errors.append(what)


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q / 100 * len(v)))]


def http_client(host, port, body, deadline, stats, headers, expect):
    conn = http.client.HTTPConnection(host, port, timeout=120)
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            conn.request("POST", "/v1/faces", body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            dt = time.monotonic() - t0
            stats.add(dt, r.status)
            if not expect(r.status):
                # Counted as an error (the status is also in the codes).
                stats.error(f"HTTP {r.status}: {data[:200]!r}")
            if r.status == 429:
                time.sleep(float(r.getheader("Retry-After", "1")))
        except Exception as e:  # noqa: BLE001 - counted and reported
            stats.error(repr(e))
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=120)
            time.sleep(0.1)
    conn.close()


def ws_connect(host, port, path, headers):
    s = socket.create_connection((host, port), timeout=120)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    for k, v in headers.items():
        req += f"{k}: {v}\r\n"
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the upgrade")
        buf += chunk
    status = int(buf.split(b" ", 2)[1])
    if status != 101:
        raise ConnectionError(f"upgrade answered {status}")
    return s, buf.split(b"\r\n\r\n", 1)[1]


def ws_send(s, payload, opcode=0x2):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, mask)
    s.sendall(head + mask + body)


def _mask_fast(payload, mask):
    # Big integers XOR the whole payload at once (a byte loop is too slow for 100 KB frames).
    n = len(payload)
    full = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")


def ws_recv(s, pending):
    buf = pending

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk

    while True:
        need(2)
        op, n = buf[0] & 0x0F, buf[1] & 0x7F
        off = 2
        if n == 126:
            need(4); n = struct.unpack(">H", buf[2:4])[0]; off = 4
        elif n == 127:
            need(10); n = struct.unpack(">Q", buf[2:10])[0]; off = 10
        need(off + n)
        payload, buf = buf[off:off + n], buf[off + n:]
        if op == 0x1:
            return payload.decode(), buf
        if op == 0x8:
            raise ConnectionError("server closed the stream")
        if op == 0x9:
            ws_send(s, payload, 0xA)


def stream_client(host, port, frame, deadline, stats, headers):
    try:
        s, pending = ws_connect(host, port, "/v1/stream", headers)
    except Exception as e:  # noqa: BLE001
        stats.error(repr(e))
        return
    tracks = set()
    try:
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            ws_send(s, frame)
            text, pending = ws_recv(s, pending)
            dt = time.monotonic() - t0
            reply = json.loads(text)
            if "error" in reply:
                stats.add(dt, reply.get("status", "error"))
                if reply.get("status") != 429:
                    stats.error(reply["error"])
                else:
                    time.sleep(reply.get("retry_after", 1))
            else:
                stats.add(dt, 200)
                tracks.update(f.get("track") for f in reply.get("faces", []))
        ws_send(s, struct.pack(">H", 1000), 0x8)
    except Exception as e:  # noqa: BLE001
        stats.error(repr(e))
    finally:
        s.close()
    with stats.lock:
        stats.__dict__.setdefault("tracks", []).append(len(tracks))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--affect", default=os.path.join(ROOT, ".build/release/affect"), help="the affect binary to start")
    ap.add_argument("--port", type=int, default=0, help="port for the server it starts (0: a free one)")
    ap.add_argument("--url", help="use a running server at http://127.0.0.1:PORT instead (give --pid for its memory)")
    ap.add_argument("--pid", type=int, help="the running server's process id")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--token", help="bearer token")
    ap.add_argument("--image", help="a JPEG to post (default: the group photo at 640x480)")
    ap.add_argument("--server-args", default="", help="extra arguments for affect serve")
    ap.add_argument("--json", help="write the figures here as JSON")
    a = ap.parse_args()
    if not 0 < a.seconds <= 3600:
        sys.exit("--seconds must be in (0, 3600]")

    tmp = tempfile.mkdtemp(prefix="affect-loadtest-")
    image = a.image or os.path.join(tmp, "frame.jpg")
    if not a.image:
        make_jpeg(image)
    body = open(image, "rb").read()
    headers = {"Content-Type": "image/jpeg"}
    if a.token:
        headers["Authorization"] = f"Bearer {a.token}"

    proc = None
    if a.url:
        host, port = a.url.split("//")[1].split(":")
        port = int(port.strip("/"))
        pid = a.pid
    else:
        host, port = "127.0.0.1", a.port or free_port()
        cmd = [a.affect, "serve", "--port", str(port)] + (["--token", a.token] if a.token else []) + a.server_args.split()
        proc = subprocess.Popen(cmd, stderr=open(os.path.join(tmp, "server.log"), "w"))
        pid = proc.pid
        for _ in range(600):
            try:
                c = http.client.HTTPConnection(host, port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            proc.kill()
            sys.exit("the server did not start; see " + os.path.join(tmp, "server.log"))

    rss = []
    stop_sampling = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop_sampling.is_set():
            if pid:
                rss.append((round(time.monotonic() - t0, 1), rss_kib(pid)))
            stop_sampling.wait(1)

    faces, streams, garbage = Stats(), Stats(), Stats()
    deadline = time.monotonic() + a.seconds
    threads = [threading.Thread(target=sample)]
    threads += [threading.Thread(target=http_client, args=(host, port, body, deadline, faces, headers, lambda s: s in (200, 429)))
                for _ in range(a.clients)]
    threads += [threading.Thread(target=stream_client, args=(host, port, body, deadline, streams,
                                                            {k: v for k, v in headers.items() if k == "Authorization"}))
                for _ in range(a.streams)]
    rnd = random.Random(1)

    def garbage_client():
        conn = http.client.HTTPConnection(host, port, timeout=120)
        while time.monotonic() < deadline:
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4000)))
            if rnd.random() < 0.3:
                junk = b"\xff\xd8\xff\xe0" + junk      # looks like a JPEG, is not one
            t0 = time.monotonic()
            try:
                conn.request("POST", "/v1/faces", body=junk, headers=headers)
                r = conn.getresponse(); r.read()
                garbage.add(time.monotonic() - t0, r.status)
                if not (400 <= r.status < 500):
                    garbage.error(f"garbage answered {r.status}")
            except Exception as e:  # noqa: BLE001
                garbage.error(repr(e))
                conn = http.client.HTTPConnection(host, port, timeout=120)
            time.sleep(0.05)
        conn.close()

    threads.append(threading.Thread(target=garbage_client))
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    elapsed = time.monotonic() - start
    stop_sampling.set()
    threads[0].join()

    exit_code = None
    if proc:
        proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_code = "hung"

    def summary(s, name):
        return {"name": name, "requests": len(s.lat), "per_second": round(len(s.lat) / elapsed, 2),
                "p50_ms": round(pct(s.lat, 50) * 1000, 1), "p99_ms": round(pct(s.lat, 99) * 1000, 1),
                "codes": {str(k): v for k, v in s.codes.items()}, "errors": s.codes.get("error", 0),
                "first_errors": s.errors}

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    valid = [r for _, r in rss if r]
    report = {
        "cpu": cpu, "cores": os.cpu_count(), "seconds": round(elapsed, 1), "clients": a.clients, "streams": a.streams,
        "image": f"{len(body)} bytes",
        "faces": summary(faces, "faces"), "stream": summary(streams, "stream"), "garbage": summary(garbage, "garbage"),
        "stream_tracks_per_client": getattr(streams, "tracks", []),
        "rss_mib": {"first": round(valid[0] / 1024, 1) if valid else None, "peak": round(max(valid) / 1024, 1) if valid else None,
                    "last": round(valid[-1] / 1024, 1) if valid else None,
                    "quarters": [round(max(valid[i * len(valid) // 4:(i + 1) * len(valid) // 4] or [0]) / 1024, 1) for i in range(4)] if valid else []},
        "sigterm_exit": exit_code,
    }
    for k in ("faces", "stream", "garbage"):
        r = report[k]
        print(f"{k:8s} {r['requests']:6d} requests  {r['per_second']:7.2f}/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  codes {r['codes']}  errors {r['errors']}")
        for e in r["first_errors"][:3]:
            print("         ", e)
    print(f"RSS MiB: first {report['rss_mib']['first']}, peak {report['rss_mib']['peak']}, last {report['rss_mib']['last']}, peak per quarter {report['rss_mib']['quarters']}")
    print(f"CPU: {cpu} ({os.cpu_count()} cores); SIGTERM exit status: {exit_code}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report | {"rss_samples": rss}, f, indent=1)
    bad = report["faces"]["errors"] + report["stream"]["errors"] + report["garbage"]["errors"]
    sys.exit(0 if bad == 0 and exit_code in (0, None) else 1)


if __name__ == "__main__":
    main()
