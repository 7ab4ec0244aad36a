#!/usr/bin/env python3
"""Checks that a reproduce folder's results.json says what its run folders say: every accuracy,
gap, loss and committee number is recomputed from the runs' own metrics files."""
import json
import math
import os
import sys

out = sys.argv[1]
res = json.load(open(os.path.join(out, "results.json")))
failures = []


def metrics(run):
    return json.load(open(os.path.join(out, run, "metrics.json")))


def same(a, b, what):
    if not math.isclose(a, b, rel_tol=0, abs_tol=1e-12):
        failures.append("%s: results say %r, runs say %r" % (what, a, b))


def check_arm(arm, what):
    assert arm["chosen_lr"] in arm["lrs"], what
    # The chosen rate has the best mean validation accuracy of the grid.
    valid = arm["valid_accuracy_by_lr"]
    if len(valid) > 1:
        same(valid[arm["lrs"].index(arm["chosen_lr"])], max(valid), what + " chosen lr is the best on validation")
    for seed, run in enumerate(arm["runs"]):
        m = metrics(run)
        same(arm["test_accuracy"][seed], m["test"]["accuracy"], "%s seed %d test accuracy" % (what, seed + 1))
    acc = arm["test_accuracy"]
    same(arm["summary"]["mean"], sum(acc) / len(acc), what + " mean")


def check_gap(pre, scr, gap, what):
    for s, d in enumerate(gap["per_seed"]):
        same(d, pre["test_accuracy"][s] - scr["test_accuracy"][s], "%s gap seed %d" % (what, s + 1))
    lo, hi = gap["summary"]["ci95"]
    verdict = "held" if lo > 0 else "did not hold" if hi < 0 else "inconclusive"
    if gap["summary"]["n"] < 2:
        verdict = "inconclusive"
    if gap["verdict"] != verdict:
        failures.append("%s: verdict %s, interval says %s" % (what, gap["verdict"], verdict))


for row in res["e1"]:
    what = "e1 %s %s" % (row["task"], row["arch"])
    check_arm(row["pretrained"], what + " pretrained")
    check_arm(row["scratch"], what + " scratch")
    check_gap(row["pretrained"], row["scratch"], row["gap"], what)
for size in res["e2"]["sizes"]:
    check_arm(size["pretrained"], "e2 %d" % size["sequences"])
    check_gap(size["pretrained"], res["e2"]["scratch"], size["gap"], "e2 %d" % size["sequences"])
    m = metrics(size["pretrain_run"])
    same(size["valid_mlm_loss"], m["final"]["valid_mlm_loss"], "e2 MLM loss")
for c in res["e3"]["corpora"]:
    check_gap(c["pretrained"], res["e3"]["scratch"], c["gap"], "e3 " + c["corpus"])
for p in res["pretraining"]:
    m = metrics(p["run"])
    same(p["valid_mlm_loss"], m["final"]["valid_mlm_loss"], p["run"] + " MLM loss")
    same(p["unigram_loss"], m["final"]["unigram_loss"], p["run"] + " unigram loss")
e4 = res["e4"]
committee_dir = [r["dir"] for r in res["runs"] if r["kind"] == "committee"][0]
ev = json.load(open(os.path.join(out, committee_dir, "eval.json")))
same(e4["committee_accuracy"], ev["committee"]["accuracy"], "e4 committee accuracy")
for i, m in enumerate(e4["members"]):
    same(m["test_accuracy"], metrics(m["run"])["test"]["accuracy"], "e4 member %d" % (i + 1))
    same(ev["members"][i]["accuracy"], m["test_accuracy"], "e4 member %d in the committee" % (i + 1))
same(e4["deep"]["test_accuracy"], metrics(e4["deep"]["run"])["test"]["accuracy"], "e4 deep")
assert len(e4["by_size"]) == len(e4["members"])
# F4: a match within 2 points (95% interval of committee - deep above -0.02) at no more latency.
lo, hi = e4["difference"]["ci95"]
lat = e4["latency"]
deep_ms = lat["deep"]["sequential"]["single"]["p50_ms"]
comm_ms = min(lat["committee"][m]["single"]["p50_ms"] for m in ("sequential", "concurrent") if m in lat["committee"])
accuracy = "matches" if lo >= -0.02 else "worse" if hi < 0 else "unclear"
want = "did not hold" if accuracy == "worse" or comm_ms > deep_ms else "held" if accuracy == "matches" else "inconclusive"
f4 = [f for f in res["findings"] if f["id"] == "F4"][0]
if f4["verdict"] != want:
    failures.append("F4 verdict %s, its numbers say %s" % (f4["verdict"], want))
assert {f["id"] for f in res["findings"]} == {"F1", "F2", "F3", "F4"}, res["findings"]
for r in res["runs"]:
    if r["kind"] in ("pretrain", "finetune"):
        m = metrics(r["dir"])
        if r["tokens"] != m["totals"]["tokens"] or r["tokens"] <= 0 or r["flops"] <= 0:
            failures.append("%s: tokens/flops %r %r" % (r["dir"], r["tokens"], r["flops"]))
# The report shows the same numbers.
report = open(os.path.join(out, "report.md")).read()
for row in res["e1"]:
    s = row["gap"]["summary"]
    text = "%+.1f [%+.1f, %+.1f]" % (100 * s["mean"], 100 * s["ci95"][0], 100 * s["ci95"][1])
    if text not in report:
        failures.append("report.md lacks the e1 gap " + text)
for f in res["findings"]:
    if f["verdict"] not in report:
        failures.append("report.md lacks the verdict of " + f["id"])
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("results.json agrees with %d runs" % len(res["runs"]))
