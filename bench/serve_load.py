#!/usr/bin/env python3
"""Load on `tlm serve` over loopback: throughput and latency at several concurrencies, with and
without dynamic batching, for the demo's one-layer model, its soft committee of 3 and its two-layer
model (the runs E4 timed: a finished `make demo` folder's runs/latency-*/job.toml names them).

Each configuration starts its own server (`--threads` compute threads) and sends, from N client
threads with keep-alive connections, single-text requests of the task's test texts until
--requests are answered or --seconds pass (bounded in both), after a warm-up. Without batching is
`--max-batch 1` (one text per forward pass); with it, `--max-batch 32 --max-wait-ms 2`. Every
answer is checked (status 200, a label of the model's), so a fast wrong server cannot score.

  /usr/bin/python3 bench/serve_load.py --tlm build/tlm --demo demo [--concurrency 1 8 64]
"""
import argparse
import csv
import glob
import http.client
import json
import os
import re
import subprocess
import threading
import time


def start_server(tlm, models, threads, batching, cwd):
    args = [tlm, "serve", "--port", "0", "--threads", str(threads), "--max-queue", "4096", "--max-texts", "64",
            "--http-threads", "80"]
    args += ["--max-batch", "32", "--max-wait-ms", "2"] if batching else ["--max-batch", "1", "--max-wait-ms", "0"]
    for m in models:
        args += ["--model", m]
    proc = subprocess.Popen(args, cwd=cwd, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    port = re.search(r"http://[0-9.]+:(\d+)", line)
    if not port:
        proc.kill()
        raise SystemExit("the server did not start: " + line + proc.stderr.read())
    return proc, int(port.group(1))


def load(port, texts, labels, concurrency, requests, seconds):
    lat, errors = [], []
    lock = threading.Lock()
    sent = [0]
    deadline = time.perf_counter() + seconds

    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if sent[0] >= requests or time.perf_counter() > deadline:
                    break
                i = sent[0]
                sent[0] += 1
            body = json.dumps({"texts": [texts[i % len(texts)]]})
            t0 = time.perf_counter()
            c.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            dt = time.perf_counter() - t0
            ok = r.status == 200 and json.loads(data)["results"][0]["label"] in labels
            with lock:
                (lat if ok else errors).append(dt if ok else (r.status, data[:100]))
        c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda q: 1e3 * lat[min(len(lat) - 1, int(q * len(lat)))]
    return {"answered": len(lat), "errors": len(errors), "texts_per_s": len(lat) / wall, "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "first_error": errors[0] if errors else None}


def mean_batch(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    m = c.getresponse().read().decode()
    s = float(re.search(r"^tlm_batch_size_sum (\S+)$", m, re.M).group(1))
    n = float(re.search(r"^tlm_batch_size_count (\S+)$", m, re.M).group(1))
    return s / n if n else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tlm", default="build/tlm")
    ap.add_argument("--demo", default="demo", help="a finished `tlm reproduce --preset demo` folder")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    a = ap.parse_args()
    tlm = os.path.abspath(a.tlm)
    (job,) = glob.glob(os.path.join(a.demo, "runs", "latency-*", "job.toml"))
    text = open(job).read()
    members = json.loads(re.search(r"^model = (\[.*\])$", text, re.M).group(1))
    deep = json.loads(re.search(r"^reference = (\".*\")$", text, re.M).group(1))
    data = json.loads(re.search(r"^data = (\".*\")$", text, re.M).group(1))
    texts = [row[1] for row in csv.reader(open(os.path.join(a.demo, data)))][:500]
    labels = set(json.load(open(os.path.join(a.demo, members[0], "config.json")))["id2label"].values())
    configs = [("one-layer", members[:1]), ("committee of 3", members), ("two-layer", [deep])]
    print(f"machine: {os.cpu_count()} cores, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}; "
          f"server threads {a.threads}; single-text requests of {a.demo}'s test texts; at most {a.requests} "
          f"requests or {a.seconds:g} s per cell")
    print("| model | batching | clients | texts/s | p50 ms | p99 ms | mean batch | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, models in configs:
        for batching in (False, True):
            for conc in a.concurrency:
                proc, port = start_server(tlm, models, a.threads, batching, a.demo)
                try:
                    load(port, texts, labels, min(conc, 4), 40, 10)  # warm-up
                    r = load(port, texts, labels, conc, a.requests, a.seconds)
                    r.update(model=name, batching=batching, clients=conc, mean_batch=mean_batch(port))
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
                rows.append(r)
                print(f"| {name} | {'on' if batching else 'off'} | {conc} | {r['texts_per_s']:,.0f} | "
                      f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_batch']:.1f} | {r['errors']} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
