#!/usr/bin/env python3
"""Recomputes every number of a reproduce folder's results.json from its run folders alone, with
code of its own, and fails on any disagreement.

Arms are rebuilt from the runs' job files (task, initialisation, architecture, learning rate, seed),
not taken from results.json: for every arm the mean validation accuracy of each learning rate, the
rate chosen on it, the test accuracies at that rate; the E1 gaps, the E2/E3 trends and the F1
roll-up with Student-t intervals from a t quantile computed here (not a table); E4 per seed: the
committee's accuracy from its members' own per-item probabilities, the paired difference to the
deep model, McNemar's exact test from the per-item files; the latency ratios from the timing
rounds; fastText's arms (the setting chosen on mean validation accuracy, every setting's test
accuracy from its per-item probabilities), the models against fastText per seed with McNemar's
test; and every finding's verdict.

Usage: check_results.py OUT"""
import glob
import json
import math
import os
import sys
import tomllib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ref"))
import st  # noqa: E402  (safetensors reader of the reference scripts)

out = sys.argv[1]
res = json.load(open(os.path.join(out, "results.json")))
failures = []


def close(a, b, what, tol=1e-9):
    if a is None or b is None or not math.isclose(a, b, rel_tol=tol, abs_tol=tol):
        failures.append("%s: results say %r, recomputed %r" % (what, a, b))


def metrics(run):
    return json.load(open(os.path.join(out, run, "metrics.json")))


# ---- statistics, written independently of tlm's stats.cpp

def t_cdf(t, df):
    """Student's t CDF through the regularised incomplete beta function (continued fraction)."""
    x = df / (df + t * t)
    a, b = df / 2.0, 0.5
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - lbeta) / a
    # Lentz's continued fraction for I_x(a, b).
    f, c, d = 1.0, 1.0, 0.0
    for i in range(0, 400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + num / (c if abs(c) > 1e-300 else 1e-300)
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    ibeta = front * (f - 1.0)
    return 1.0 - 0.5 * ibeta if t > 0 else 0.5 * ibeta


def t975(df):
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < 0.975:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def summary(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    varies = n > 1 and sd > 1e-12 * max(1.0, abs(mean))
    half = t975(n - 1) * sd / math.sqrt(n) if varies else 0.0
    return {"n": n, "mean": mean, "std": sd, "ci": (mean - half, mean + half) if varies else None}


def verdict(s):
    if s["ci"] is not None and s["ci"][0] > 0:
        return "held"
    if s["ci"] is not None and s["ci"][1] < 0:
        return "did not hold"
    return "inconclusive"


def check_summary(got, s, what):
    close(got["mean"], s["mean"], what + " mean")
    if s["ci"] is None:
        if got["ci95"] is not None:
            failures.append("%s: an interval where the values do not vary (or are one)" % what)
        return
    if got["ci95"] is None:
        failures.append("%s: no interval where the values vary" % what)
        return
    # Both sides compute the t quantile from the distribution: they agree to rounding.
    half = s["ci"][1] - s["mean"]
    for k in (0, 1):
        if abs(got["ci95"][k] - s["ci"][k]) > 1e-6 * abs(half) + 1e-12:
            failures.append("%s: interval %r, recomputed %r" % (what, got["ci95"], s["ci"]))


def mcnemar_p(b, c):
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


# ---- arms, rebuilt from the job files of the fine-tuning runs

# An arm is every setting of a job but its rate and seeds; only the plan's seeds count, so a folder
# that also holds another plan's runs (a copy reused for other seeds) is still read right.
plan = json.load(open(os.path.join(out, "plan.json")))
first_seed = plan.get("first_seed", 1)
plan_seeds = range(first_seed, first_seed + plan.get("seeds", 1))
arms = {}  # arm key -> {lr: {seed: run}}
arm_of = {}  # run -> arm key
for path in glob.glob(os.path.join(out, "runs", "finetune-*", "job.toml")):
    run = os.path.relpath(os.path.dirname(path), out)
    job = tomllib.load(open(path, "rb"))
    if job["sample_seed"] not in plan_seeds:
        continue
    key = json.dumps({k: v for k, v in job.items() if k not in ("lr", "seed", "sample_seed", "out")}, sort_keys=True)
    arms.setdefault(key, {}).setdefault(job["lr"], {})[job["sample_seed"]] = run
    arm_of[run] = key


def recompute_arm(got, what):
    """Checks one arm of results.json against all its runs; returns the test accuracies per seed."""
    grid = arms[arm_of[got["runs"][0]]]
    lrs = sorted(grid)
    if lrs != sorted(got["lrs"]):
        failures.append("%s: learning rates %r, runs have %r" % (what, got["lrs"], lrs))
    seeds = sorted(next(iter(grid.values())))
    valid = {lr: sum(metrics(grid[lr][s])["final"]["valid_accuracy"] for s in seeds) / len(seeds)
             for lr in lrs} if len(lrs) > 1 else None
    order = got["lrs"]  # ties go to the first rate of the plan's list
    chosen = max(order, key=lambda lr: (valid[lr], -order.index(lr))) if valid else order[0]
    if got["chosen_lr"] != chosen:
        failures.append("%s: chose lr %r, validation says %r" % (what, got["chosen_lr"], chosen))
    if valid:
        for i, lr in enumerate(order):
            close(got["valid_accuracy_by_lr"][i], valid[lr], "%s mean validation accuracy at lr %r" % (what, lr))
    test = [metrics(grid[chosen][s])["test"]["accuracy"] for s in seeds]
    for s, acc in enumerate(test):
        close(got["test_accuracy"][s], acc, "%s seed %d test accuracy" % (what, s + 1))
    if got["runs"] != [grid[chosen][s] for s in seeds]:
        failures.append("%s: runs %r are not the chosen rate's" % (what, got["runs"]))
    check_summary(got["summary"], summary(test), what + " accuracy")
    # Per epoch, over seeds: validation and test accuracy, each where every epoch of every seed
    # has it and the seeds have as many epochs (test_every = "end" scores the test set only at the end).
    hist = [metrics(grid[chosen][s])["history"] for s in seeds]
    want = {}
    for of in ("test_accuracy", "valid_accuracy"):
        if hist and all(len(h) == len(hist[0]) for h in hist) and all(of in r for h in hist for r in h):
            at = [summary([h[e][of] for h in hist]) for e in range(len(hist[0]))]
            want[of + "_mean"], want[of + "_std"] = [a["mean"] for a in at], [a["std"] for a in at]
    curve = got.get("curve")
    if curve is None or sorted(curve) != sorted(want):
        failures.append("%s: the per-epoch curves are %r, the runs give %r" % (what, curve and sorted(curve), sorted(want)))
    else:
        for key, values in want.items():
            if len(curve[key]) != len(values):
                failures.append("%s: %s has %d epochs, the runs %d" % (what, key, len(curve[key]), len(values)))
                continue
            for e, v in enumerate(values):
                close(curve[key][e], v, "%s %s at epoch %d" % (what, key, e + 1))
    return test


def paired(got, a, b, what):
    d = [x - y for x, y in zip(a, b)]
    for s, v in enumerate(d):
        close(got["per_seed"][s], v, "%s seed %d" % (what, s + 1))
    s = summary(d)
    check_summary(got["summary"], s, what)
    if got["verdict"] != verdict(s):
        failures.append("%s: verdict %s, recomputed %s" % (what, got["verdict"], verdict(s)))
    return d, s


# ---- fastText arms, rebuilt from the fastText runs' job files; test accuracies from the per-item files

ft_runs = {}  # the arm's configuration (all but seeds and folder) -> {sample seed: run}
ft_arm_of = {}  # run -> arm key
ft_jobs = {}  # run -> its job file
for path in glob.glob(os.path.join(out, "runs", "fasttext-*", "job.toml")):
    run = os.path.relpath(os.path.dirname(path), out)
    job = tomllib.load(open(path, "rb"))
    if job["sample_seed"] not in plan_seeds:
        continue
    key = json.dumps({k: v for k, v in job.items() if k not in ("seed", "sample_seed", "out")}, sort_keys=True)
    ft_runs.setdefault(key, {})[job["sample_seed"]] = run
    ft_arm_of[run] = key
    ft_jobs[run] = job


def argmax_rows(probs):
    return [max(range(len(row)), key=lambda k: (row[k], -k)) for row in probs]


def predicted(run_file, name):
    t, _ = st.load(os.path.join(out, run_file))
    return argmax_rows(t["probs." + name].tolist()), t["labels"].tolist(), t["items"].tolist()


def accuracy_of(run_file, name):
    pred, labels, _ = predicted(run_file, name)
    return sum(p == y for p, y in zip(pred, labels)) / len(labels)


def recompute_fasttext(got, what):
    """Checks one fastText arm; returns per seed (test accuracy, predicted labels, labels, items)."""
    by_seed = ft_runs[ft_arm_of[got["runs"][0]]]
    seeds = sorted(by_seed)
    if got["runs"] != [by_seed[s] for s in seeds]:
        failures.append("%s: runs %r are not the task's fastText runs %r" % (what, got["runs"], by_seed))
    ms = [metrics(by_seed[s]) for s in seeds]
    settings = [row["setting"] for row in ms[0]["grid"]]
    if got["settings"] != settings:
        failures.append("%s: settings %r, runs have %r" % (what, got["settings"], settings))
    valid = {}  # setting -> validation accuracy per seed, from the per-item files
    for m, s in zip(ms, seeds):
        if [row["setting"] for row in m["grid"]] != settings:
            failures.append("%s seed %d: another grid" % (what, s))
        for row in m["grid"]:  # every setting's accuracies from its per-item probabilities
            if "failed" in row:
                valid[row["setting"]] = None
                continue
            run = by_seed[s]
            close(row["test_accuracy"], accuracy_of(run + "/test_predictions.safetensors", row["setting"]),
                  "%s seed %d %s test accuracy" % (what, s, row["setting"]))
            if len(settings) > 1:
                va = accuracy_of(run + "/valid_predictions.safetensors", row["setting"])
                close(row["valid_accuracy"], va, "%s seed %d %s validation accuracy" % (what, s, row["setting"]))
                if valid.get(row["setting"], []) is not None:
                    valid.setdefault(row["setting"], []).append(va)
    ran = [g for g in range(len(settings)) if valid.get(settings[g], []) is not None]
    if len(settings) > 1:
        mean = {g: sum(valid[settings[g]]) / len(seeds) for g in ran}
        chosen = max(ran, key=lambda g: (mean[g], -g))  # ties: the first in grid order
        for g in range(len(settings)):
            if g in mean:
                close(got["valid_accuracy_by_setting"][g], mean[g], "%s mean validation accuracy of %s"
                      % (what, settings[g]))
            elif got["valid_accuracy_by_setting"][g] is not None:
                failures.append("%s: %s failed in a seed but has a mean validation accuracy" % (what, settings[g]))
    else:
        chosen = 0
    if got["chosen_setting"] != settings[chosen]:
        failures.append("%s: chose %r, validation says %r" % (what, got["chosen_setting"], settings[chosen]))
    edges = []  # a choice at an end of the grid's range of lr or epoch
    for key in ("lr", "epoch"):
        values = [row[key] for row in ms[0]["grid"]]
        if min(values) < max(values) and ms[0]["grid"][chosen][key] in (min(values), max(values)):
            edges.append(key)
    if [e.split("=")[0] for e in got["at_grid_edge"]] != edges:
        failures.append("%s: at the grid's edge in %r, recomputed %r" % (what, got["at_grid_edge"], edges))
    out_seeds = []
    for i, s in enumerate(seeds):
        pred, labels, items = predicted(by_seed[s] + "/test_predictions.safetensors", settings[chosen])
        acc = sum(p == y for p, y in zip(pred, labels)) / len(labels)
        close(got["test_accuracy"][i], acc, "%s seed %d test accuracy" % (what, s))
        out_seeds.append((acc, pred, labels, items))
    check_summary(got["summary"], summary([a for a, _, _, _ in out_seeds]), what + " accuracy")
    return out_seeds


# The keys that decide which examples a run draws, with their defaults (the same in both schemas).
DRAW_KEYS = {"train": None, "test": "", "classes": "", "format": None, "text_field": "text", "on_bad_row": "stop",
             "per_label_train": 0, "per_label_test": 0, "valid_per_label": 0, "cap_per_label": False,
             "test_seed": 0, "sample_seed": 0, "max_len": 128, "cased": False}


def same_draw(ft_run, model_runs, what):
    """fastText's run of a seed draws what that seed's fine-tuning runs draw: the same keys."""
    ft = {k: ft_jobs[ft_run].get(k, d) for k, d in DRAW_KEYS.items()}
    for run in model_runs:
        job = tomllib.load(open(os.path.join(out, run, "job.toml"), "rb"))
        mine = {k: job.get(k, d) for k, d in DRAW_KEYS.items()}
        if mine != ft:
            failures.append("%s: %s draws %r, fastText's %s %r" % (what, run, mine, ft_run, ft))


verdicts = {}
e1_verdicts = []
for row in res.get("e1", []):
    what = "e1 %s %s" % (row["task"], row["arch"])
    pre = recompute_arm(row["pretrained"], what + " pre-trained")
    scr = recompute_arm(row["scratch"], what + " scratch")
    _, s = paired(row["gap"], pre, scr, what + " gap")
    e1_verdicts.append(verdict(s))


def rollup(vs):
    held, failed, n = vs.count("held"), vs.count("did not hold"), len(vs)
    return ("held" if held == n else "did not hold" if failed == n else "mixed" if held and failed
            else "held in part" if held else "did not hold in part" if failed else "inconclusive")


if e1_verdicts:
    verdicts["F1"] = rollup(e1_verdicts)


def trend_of(section, rows, key, what):
    scratch = recompute_arm(section["scratch"], what + " scratch")
    gaps = []
    for r in rows:
        pre = recompute_arm(r["pretrained"], "%s %s" % (what, r[key]))
        d, _ = paired(r["gap"], pre, scratch, "%s %s gap" % (what, r[key]))
        gaps.append(d)
        m = metrics(r["pretrain_run"])
        close(r["valid_mlm_loss"], m["final"]["valid_mlm_loss"], "%s %s MLM loss" % (what, r[key]))
    if "trend" in section:
        paired(section["trend"], gaps[-1], gaps[0], what + " trend")
        return verdict(summary([x - y for x, y in zip(gaps[-1], gaps[0])]))


if "e2" in res:
    if isinstance(res["e2"], list):  # [[e2]]: one curve per table, F2 rolled up as F1
        parts = [trend_of(e, e["sizes"], "sequences", "e2 " + e["task"]) for e in res["e2"]]
        verdicts["F2"] = rollup([v for v in parts if v is not None])
    else:
        verdicts["F2"] = trend_of(res["e2"], res["e2"]["sizes"], "sequences", "e2")
if "e3" in res:
    rows = res["e3"]["corpora"]
    for a, b in zip(rows, rows[1:]):  # ordered by overlap
        if a["overlap"]["token_occurrence"] > b["overlap"]["token_occurrence"]:
            failures.append("e3 corpora are not in order of overlap")
    overlap_runs = {r["title"].split(" ")[3]: r["dir"] for r in res["runs"] if r["kind"] == "overlap"}
    for r in rows:
        ov = json.load(open(os.path.join(out, overlap_runs[r["corpus"]], "overlap.json")))
        close(r["overlap"]["token_occurrence"], ov["token_occurrence_overlap"], "e3 %s overlap" % r["corpus"])
    verdicts["F3"] = trend_of(res["e3"], rows, "corpus", "e3")

for p in res["pretraining"]:
    m = metrics(p["run"])
    close(p["valid_mlm_loss"], m["final"]["valid_mlm_loss"], p["run"] + " MLM loss")
    close(p["unigram_loss"], m["final"]["unigram_loss"], p["run"] + " unigram loss")

# ---- E4: per seed, from the per-item files


def load_items(path):
    t, meta = st.load(path)
    return t, meta



if "e4" in res:
    e4 = res["e4"]
    members = [recompute_arm(m, "e4 member %d" % (i + 1)) for i, m in enumerate(e4["members"])]
    deep = recompute_arm(e4["deep"], "e4 deep")
    committee_acc, diffs, committee_items = [], [], []
    for s, cdir in enumerate(e4["committee"]["runs"]):
        # The committee's probabilities are the mean of its members' own per-item probabilities.
        member_probs = []
        for i, m in enumerate(e4["members"]):
            t, _ = load_items(os.path.join(out, m["runs"][s], "test_predictions.safetensors"))
            member_probs.append(t["probs.model"].tolist())
            labels, items = t["labels"].tolist(), t["items"].tolist()
        mean = [[sum(mp[i][k] for mp in member_probs) / len(member_probs) for k in range(len(member_probs[0][0]))]
                for i in range(len(labels))]
        c_pred = argmax_rows(mean)
        committee_items.append((c_pred, labels, items))
        acc = sum(p == y for p, y in zip(c_pred, labels)) / len(labels)
        close(e4["committee"]["test_accuracy"][s], acc, "e4 seed %d committee accuracy" % (s + 1), tol=1e-6)
        committee_acc.append(acc)
        ct, _ = load_items(os.path.join(out, cdir, "predictions.safetensors"))
        if ct["items"].tolist() != items:
            failures.append("e4 seed %d: the committee was not scored on its members' test items" % (s + 1))
        dt, _ = load_items(os.path.join(out, e4["deep"]["runs"][s], "test_predictions.safetensors"))
        if dt["items"].tolist() != items:
            failures.append("e4 seed %d: the deep model was not scored on the committee's test items" % (s + 1))
        d_pred = argmax_rows(dt["probs.model"].tolist())
        b = sum(cp == y and dp != y for cp, dp, y in zip(c_pred, d_pred, labels))
        c = sum(dp == y and cp != y for cp, dp, y in zip(c_pred, d_pred, labels))
        got = e4["mcnemar"][s]
        if (got["committee_right_deep_wrong"], got["deep_right_committee_wrong"]) != (b, c):
            failures.append("e4 seed %d McNemar counts %r, recomputed %r" % (s + 1, got, (b, c)))
        close(got["p"], mcnemar_p(b, c), "e4 seed %d McNemar p" % (s + 1), tol=1e-9)
        diffs.append(acc - deep[s])
    sd = summary(diffs)
    check_summary(e4["difference"]["summary"], sd, "e4 committee minus deep")
    # Latency: the ratios from the timing rounds of the latency run's own file.
    latency_runs = [r["dir"] for r in res["runs"] if r["kind"] == "latency"]
    if len(latency_runs) != 1:
        failures.append("e4: %d latency runs, expected 1" % len(latency_runs))
    timed = json.load(open(os.path.join(out, latency_runs[0], "latency.json")))
    if timed != e4["latency"]:
        failures.append("e4: results.json's latency is not %s/latency.json" % latency_runs[0])
    cmp = timed["comparison"]
    rounds = cmp["round_p50_ms"]
    for pair, ratio in cmp["ratios"].items():
        num, den = pair.split("/")
        per = [a / b for a, b in zip(rounds[num], rounds[den])]
        s = summary([math.log(x) for x in per])
        close(ratio["geometric_mean"], math.exp(s["mean"]), "latency %s" % pair, tol=1e-9)
        if (s["ci"] is None) != (ratio["ci95"] is None):
            failures.append("latency %s: interval %r, recomputed %r" % (pair, ratio["ci95"], s["ci"]))
        elif s["ci"] is not None:
            for k in (0, 1):
                if abs(math.log(ratio["ci95"][k]) - s["ci"][k]) > 1e-6 * (s["ci"][1] - s["mean"]) + 1e-12:
                    failures.append("latency %s interval %r, recomputed %r" % (pair, ratio["ci95"], s["ci"]))
    mode = "committee_concurrent" if "committee_concurrent/reference" in cmp["ratios"] else "committee_sequential"
    rs = summary([math.log(a / b) for a, b in zip(rounds[mode], rounds["reference"])])
    latency = ("not shown" if rs["ci"] is None else "as fast" if math.exp(rs["ci"][1]) <= 1.10
               else "slower" if math.exp(rs["ci"][0]) > 1.10 else "not shown")
    accuracy = ("unclear" if sd["ci"] is None else "matches" if sd["ci"][0] >= -0.02
                else "worse" if sd["ci"][1] < 0 else "unclear")
    verdicts["F4"] = ("did not hold" if accuracy == "worse" or latency == "slower"
                      else "held" if accuracy == "matches" and latency == "as fast" else "inconclusive")

# ---- fastText against the tiny models: per seed from both sides' per-item predictions

ft_verdicts = []
for i, row in enumerate(res.get("fasttext", [])):
    what = "fasttext %s %s" % (row["task"], row["model"])
    ft = recompute_fasttext(row["fasttext"], what + " (fastText)")
    if row["model"].startswith("soft committee"):
        model = [(p, y, it) for p, y, it in committee_items]
        runs_by_seed = [[m["runs"][s] for m in res["e4"]["members"]] + [res["e4"]["deep"]["runs"][s]]
                        for s in range(len(model))]
    else:
        arch = row["model"][len("pre-trained "):]
        e1row = [r for r in res["e1"] if r["task"] == row["task"] and r["arch"] == arch]
        if len(e1row) != 1:
            failures.append("%s: no e1 setting of that task and architecture" % what)
            continue
        model = [predicted(run + "/test_predictions.safetensors", "model") for run in e1row[0]["pretrained"]["runs"]]
        runs_by_seed = [[run] for run in e1row[0]["pretrained"]["runs"]]
    for s, runs in enumerate(runs_by_seed):
        same_draw(row["fasttext"]["runs"][s], runs, "%s seed %d" % (what, s + 1))
    accs = []
    for s, ((mp, my, mi), (_, fp, fy, fi)) in enumerate(zip(model, ft)):
        if mi != fi or my != fy:
            failures.append("%s seed %d: fastText and the model were not scored on the same items" % (what, s + 1))
        accs.append(sum(p == y for p, y in zip(mp, my)) / len(my))
        b = sum(p == y and q != y for p, q, y in zip(mp, fp, my))
        c = sum(q == y and p != y for p, q, y in zip(mp, fp, my))
        got = row["mcnemar"][s]
        if (got["model_right_fasttext_wrong"], got["fasttext_right_model_wrong"]) != (b, c):
            failures.append("%s seed %d McNemar counts %r, recomputed %r" % (what, s + 1, got, (b, c)))
        close(got["p"], mcnemar_p(b, c), "%s seed %d McNemar p" % (what, s + 1))
    for s, a in enumerate(accs):
        close(row["test_accuracy"][s], a, "%s seed %d model accuracy" % (what, s + 1), tol=1e-6)
    check_summary(row["summary"], summary(accs), what + " model accuracy")
    _, sd = paired(row["difference"], accs, [a for a, _, _, _ in ft], what + " difference")
    ft_verdicts.append(verdict(sd))
for row in res.get("e1", []):
    if "fasttext" in row:
        recompute_fasttext(row["fasttext"], "e1 %s %s fastText" % (row["task"], row["arch"]))
if "fasttext" in res.get("e4", {}):
    recompute_fasttext(res["e4"]["fasttext"], "e4 fastText")
if ft_verdicts:
    verdicts["F5"] = rollup(ft_verdicts)

# Decontamination: the counts are the cleaning runs' own, and add up.
clean_runs = {json.load(open(os.path.join(out, r["dir"], "clean.json")))["corpus"]: r["dir"]
              for r in res["runs"] if r["kind"] == "clean"}
if set(res.get("decontamination", {})) != set(clean_runs):
    failures.append("decontamination lists %r, cleaning runs %r" % (sorted(res.get("decontamination", {})),
                                                                     sorted(clean_runs)))
for name, d in res.get("decontamination", {}).items():
    if name not in clean_runs:
        continue
    got = json.load(open(os.path.join(out, clean_runs[name], "clean.json")))
    if got != d:
        failures.append("decontamination of %s differs from %s/clean.json" % (name, clean_runs[name]))
    if got["kept"] != got["documents"] - got["removed"] or sum(got["removed_by_task"].values()) != got["removed"]:
        failures.append("decontamination of %s: counts do not add up: %r" % (name, got))
    kept_lines = sum(1 for _ in open(os.path.join(out, clean_runs[name], "corpus.txt")))
    if kept_lines != got["kept"]:
        failures.append("decontamination of %s: corpus.txt has %d documents, clean.json says %d kept"
                        % (name, kept_lines, got["kept"]))

for f in res["findings"]:
    if f["id"] in verdicts and f["verdict"] != verdicts[f["id"]]:
        failures.append("%s: verdict %s, recomputed %s" % (f["id"], f["verdict"], verdicts[f["id"]]))
if {f["id"] for f in res["findings"]} != set(verdicts):
    failures.append("findings %r, recomputed %r" % ([f["id"] for f in res["findings"]], sorted(verdicts)))
for r in res["runs"]:
    if r["kind"] in ("pretrain", "finetune"):
        m = metrics(r["dir"])
        if r["tokens"] != m["totals"]["tokens"] or r["tokens"] <= 0 or r["flops"] <= 0:
            failures.append("%s: tokens/flops %r %r" % (r["dir"], r["tokens"], r["flops"]))
# The report shows the same numbers.
report = open(os.path.join(out, "report.md")).read()
for row in res.get("e1", []):
    s = row["gap"]["summary"]
    if s["ci95"] is not None:
        text = "%+.1f [%+.1f, %+.1f]" % (100 * s["mean"], 100 * s["ci95"][0], 100 * s["ci95"][1])
        if text not in report:
            failures.append("report.md lacks the e1 gap " + text)
for row in res.get("fasttext", []):
    s = row["difference"]["summary"]
    if s["ci95"] is not None:
        text = "| %s | %+.1f [%+.1f, %+.1f] | **%s** |" % (row["fasttext"]["chosen_setting"], 100 * s["mean"],
                                                         100 * s["ci95"][0], 100 * s["ci95"][1],
                                                         row["difference"]["verdict"])
        if text not in report:
            failures.append("report.md lacks the fastText comparison " + text)
for f in res["findings"]:
    if f["verdict"] not in report:
        failures.append("report.md lacks the verdict of " + f["id"])
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("results.json agrees with %d runs, recomputed from their files (%d arms, %d fastText arms)"
      % (len(res["runs"]), len(arms), len(ft_runs)))
