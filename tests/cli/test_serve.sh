#!/usr/bin/env bash
# tlm serve on a free loopback port: (a) the answers for 200 texts (accents, CJK, long ones) equal
# tlm predict --probs within 1e-6, for one model and a committee of 3, members too; (b) 2,000
# requests from 32 concurrent clients, a tenth malformed or oversized, all answered with the right
# status, the server alive and /metrics counting them; (c) overload with a tiny queue gives 503s
# with Retry-After, not a crash or a hang; (d) SIGTERM with requests in flight: every accepted
# request is answered and the server exits 0. Also /v1/models, /health, the page and 404s.
# Usage: test_serve.sh path/to/tlm
set -euo pipefail
source "$(dirname "$0")/../shell_helpers.sh"
start_test "$1"

$py "$root/tests/experiment/make_mini_data.py" data >/dev/null
cat data/corpora/near.txt data/corpora/far.txt > corpus.txt
"$tlm" vocab train --corpus corpus.txt --size 300 --out vocab.txt >/dev/null
ft=(finetune --train data/task/train.csv --test data/task/test.csv --format csv --classes data/task/classes.txt
    --scratch --vocab vocab.txt --layers 1 --hidden 32 --heads 2 --max-len 24 --batch 16 --epochs 2 --threads 1)
for s in 1 2 3; do "$tlm" "${ft[@]}" --seed $s --out m$s >/dev/null 2>&1 || fail "fine-tuning m$s failed"; done

# 200 texts: the task's, with accents, CJK, and ones far over the max length (truncated).
$py - <<'PY'
import csv, json
rows = [r[1] for r in csv.reader(open("data/task/test.csv"))] + [r[1] for r in csv.reader(open("data/task/train.csv"))]
extra = ["Café déjà vu naïve façade", "東京 大学 の 研究", "ünïcödé " * 40, "a " * 500, "Ωμέγα and ALPHA"]
texts = (extra + [r.replace("\n", " ") for r in rows])[:200]
assert len(texts) == 200
open("texts.txt", "w").write("".join(t + "\n" for t in texts))
PY
"$tlm" predict --model m1 --probs --max-len 24 --input texts.txt >p1.jsonl
"$tlm" predict --model m1 --model m2 --model m3 --probs --max-len 24 --input texts.txt >p3.jsonl

# start_server LOG ARGS...: starts tlm serve on a free port; sets server (pid) and url.
start_server() {
  local log=$1
  shift
  "$tlm" serve --port 0 --threads 1 "$@" 2>"$log" &
  server=$!
  for _ in $(seq 1 200); do
    grep -q "listening on http://" "$log" && break
    kill -0 $server 2>/dev/null || { cat "$log"; fail "the server died at start"; }
    sleep 0.05
  done
  url=$(grep -o "http://[0-9.:]*" "$log" | head -1)
  [ -n "$url" ] || { cat "$log"; fail "the server did not say where it listens"; }
}

# --- (a) the answers equal tlm predict, alone and as a committee (members too)
start_server s1.txt --model m1
$py - "$url" p1.jsonl 1 <<'PY' || fail "serve (one model) differs from tlm predict"
import json, sys, urllib.request
url, want, k = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], int(sys.argv[3])
texts = open("texts.txt").read().splitlines()
got = []
for i in range(0, len(texts), 7):  # requests of 7 texts, so batches mix
    req = urllib.request.Request(url + "/v1/classify", json.dumps({"texts": texts[i:i + 7], "members": True}).encode(),
                                 {"Content-Type": "application/json"})
    got += json.load(urllib.request.urlopen(req))["results"]
assert len(got) == len(want) == 200
worst = 0
for g, w in zip(got, want):
    assert g["label"] == w["label"], (g, w)
    worst = max(worst, max(abs(g["probs"][c] - w["probs"][c]) for c in w["probs"]))
    assert len(g["members"]) == k
print(f"serve vs predict ({k} model(s)): labels equal, probabilities within {worst:.1e}")
assert worst <= 1e-6, worst
PY
kill -TERM $server && wait $server || fail "the server did not exit 0 on SIGTERM"

start_server s3.txt --model m1 --model m2 --model m3 --members side-by-side
$py - "$url" p3.jsonl 3 <<'PY' || fail "serve (committee) differs from tlm predict"
import json, sys, urllib.request
url, want, k = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])], int(sys.argv[3])
texts = open("texts.txt").read().splitlines()
req = urllib.request.Request(url + "/v1/classify", json.dumps({"texts": texts[:50], "members": True}).encode())
got = json.load(urllib.request.urlopen(req))["results"]
for t in range(50, 200, 50):
    req = urllib.request.Request(url + "/v1/classify", json.dumps({"texts": texts[t:t + 50], "members": True}).encode())
    got += json.load(urllib.request.urlopen(req))["results"]
worst = 0
for g, w in zip(got, want):
    assert g["label"] == w["label"], (g, w)
    worst = max(worst, max(abs(g["probs"][c] - w["probs"][c]) for c in w["probs"]))
    # the committee is the mean of its members
    for c in w["probs"]:
        assert abs(g["probs"][c] - sum(m[c] for m in g["members"]) / 3) <= 1e-6
print(f"serve vs predict (committee of 3): labels equal, probabilities within {worst:.1e}")
assert worst <= 1e-6, worst
models = json.load(urllib.request.urlopen(url + "/v1/models"))
assert models["committee"] and len(models["members"]) == 3 and models["labels"] and models["params"] > 0, models
assert json.load(urllib.request.urlopen(url + "/health"))["status"] == "ok"
page = urllib.request.urlopen(url + "/").read().decode()
assert "<textarea" in page and "/v1/classify" in page
try:
    urllib.request.urlopen(url + "/nope")
    raise AssertionError("no 404")
except urllib.error.HTTPError as e:
    assert e.code == 404 and "no such path" in json.load(e)["error"]
PY

# --- (b) 2,000 requests from 32 clients, a tenth of them bad: the right status each, then /metrics
$py - "$url" <<'PY' || fail "the mixed load was not answered right"
import concurrent.futures, http.client, json, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
bad = [  # body, expected status, message fragment
    (b"{not json", 400, "not JSON"),
    (b'{"texts": "one"}', 400, "must be an array"),
    (b'{"texts": []}', 400, "is empty"),
    (b'{}', 400, "is missing"),
    (b'{"texts": [1]}', 400, "texts[0] is a number"),
    (b'{"texts": ["x"], "extra": 1}', 400, "unknown key"),
    (b'{"texts": ["\xff\xfe"]}', 400, "not JSON in UTF-8"),
    (json.dumps({"texts": ["x" * 30000]}).encode(), 413, "bytes, at most"),
    (json.dumps({"texts": ["x"] * 100}).encode(), 413, "at most 64 per request"),
    (b"[" + b"1," * 600000 + b"1]", 413, "size limit"),
]
def one(i):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    if i % 10 == 0:
        body, status, frag = bad[(i // 10) % len(bad)]
    else:
        body, status, frag = json.dumps({"texts": [f"text number {i}", "another"]}).encode(), 200, None
    c.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == status, (i, r.status, status, data[:200])
    j = json.loads(data)
    if frag:
        assert frag in j["error"], (i, j)
    else:
        assert len(j["results"]) == 2
    return r.status
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    statuses = list(pool.map(one, range(2000)))
print("2000 requests:", {s: statuses.count(s) for s in sorted(set(statuses))})
PY
$py - "$url" <<'PY' || fail "/metrics does not count the load"
import re, sys, urllib.request
m = urllib.request.urlopen(sys.argv[1] + "/metrics").read().decode()
def value(pattern):
    found = re.search("^" + re.escape(pattern) + r" (\S+)$", m, re.M)
    assert found, (pattern, m[:2000])
    return float(found.group(1))
ok = value('tlm_requests_total{path="/v1/classify",status="200"}')
assert ok >= 1800 + 4, ok  # the load's 1,800 plus the 4 requests of (a)
assert value('tlm_requests_total{path="/v1/classify",status="400"}') == 140
assert value('tlm_requests_total{path="/v1/classify",status="413"}') == 60
assert value("tlm_classify_seconds_count") == ok
assert value('tlm_batch_size_bucket{le="+Inf"}') == value("tlm_batch_size_count") > 0
assert value("tlm_texts_total") >= 3600 + 200
assert value("tlm_queue_texts") == 0
print(f"/metrics: {ok:.0f} answered 200, 140 400s, 60 413s; mean batch "
      f"{value('tlm_batch_size_sum') / value('tlm_batch_size_count'):.1f} texts")
PY
kill -0 $server || fail "the server died under the mixed load"
kill -TERM $server && wait $server || fail "the server did not exit 0 on SIGTERM"

# --- (c) overload: a queue of 2 texts and requests of 2 from 16 clients: 503s with Retry-After,
# and the server still answers afterwards
start_server s-over.txt --model m1 --model m2 --model m3 --max-queue 2 --max-batch 2 --max-texts 2 --max-wait-ms 50
$py - "$url" <<'PY' || fail "overload was not answered with 503s"
import concurrent.futures, http.client, json, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
def one(i):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    c.request("POST", "/v1/classify", json.dumps({"texts": ["a b c " * 5, "d e f"]}))
    r = c.getresponse()
    data = json.loads(r.read())
    if r.status == 503:
        assert r.getheader("Retry-After") == "1" and "overloaded" in data["error"], data
    else:
        assert r.status == 200, (r.status, data)
    return r.status
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    statuses = list(pool.map(one, range(400)))
print("overload:", {s: statuses.count(s) for s in sorted(set(statuses))})
assert statuses.count(503) > 0 and statuses.count(200) > 0
assert one(0) == 200
PY
kill -TERM $server && wait $server || fail "the server did not exit 0 on SIGTERM"

# --- dynamic batching: 8 concurrent one-text requests within a 300 ms wait share forward passes
start_server s-batch.txt --model m1 --max-wait-ms 300 --max-batch 8
$py - "$url" <<'PY' || fail "concurrent requests were not batched"
import concurrent.futures, json, re, sys, urllib.request
url = sys.argv[1]
def one(i):
    req = urllib.request.Request(url + "/v1/classify", json.dumps({"texts": [f"text {i}"]}).encode())
    return json.load(urllib.request.urlopen(req))["results"][0]["label"]
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    labels = list(pool.map(one, range(8)))
m = urllib.request.urlopen(url + "/metrics").read().decode()
passes = float(re.search(r"^tlm_batch_size_count (\S+)$", m, re.M).group(1))
texts = float(re.search(r"^tlm_texts_total (\S+)$", m, re.M).group(1))
print(f"8 concurrent one-text requests: {passes:.0f} forward pass(es)")
assert texts == 8 and passes < 8, (texts, passes)
PY
kill -TERM $server && wait $server || fail "the server did not exit 0 on SIGTERM"

# --- (d) SIGTERM with requests in flight: every accepted request is answered, then exit 0
start_server s-drain.txt --model m1 --model m2 --model m3 --max-wait-ms 200 --max-batch 64 --max-queue 4096
$py - "$url" $server <<'PY' || fail "requests in flight at SIGTERM were not all answered"
import concurrent.futures, http.client, json, os, signal, sys, threading, time, urllib.parse
url, pid = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
sent = threading.Barrier(17)
def one(i):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    c.request("POST", "/v1/classify", json.dumps({"texts": ["word " * 20] * 32}))
    sent.wait()
    r = c.getresponse()
    return r.status, len(json.loads(r.read()).get("results", []))
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    futures = [pool.submit(one, i) for i in range(16)]
    sent.wait()
    time.sleep(0.3)  # the requests are on the server, waiting for their batch or in it
    os.kill(pid, signal.SIGTERM)
    answers = [f.result() for f in futures]
assert answers == [(200, 32)] * 16, answers
print("SIGTERM with 16 requests in flight: all 16 answered")
PY
wait $server || fail "the server did not exit 0 after draining"
grep -q "serve: stopped; " s-drain.txt || fail "no drain summary"

# --- refusals at start: a bad model folder, members that disagree, a port in use
expect_error "m9" "$tlm" serve --model m9 --port 0
expect_error "exceeds --max-queue" "$tlm" serve --model m1 --port 0 --max-texts 300
start_server s-port.txt --model m1
expect_error "cannot listen on 127.0.0.1:${url##*:}" "$tlm" serve --model m1 --port "${url##*:}"
kill -TERM $server && wait $server || fail "the server did not exit 0 on SIGTERM"
echo "serve: all checks passed"
