#!/usr/bin/env bash
# tlm reproduce spread over MPI ranks (two ranks on this machine, each told it is a machine of its
# own with TLM_NODE_NAME, one thread each): every run runs once, on both machines, the timed run
# alone on its machine, and everything but timings equals a one-process reproduce of the same plan
# (one thread per run in both: the same bits); two ranks on one machine share its threads and
# runs at a time as one process would, with the same results; kill -9 of one rank mid-way ends the
# job (no hang), and the same command continues it to the same kind of finish. Without mpirun (openmpi-bin) or
# with a tlm built without MPI it skips (exit 77).
# Usage: test_reproduce_mpi.sh path/to/tlm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../shell_helpers.sh"
start_test "$1"
use_mpirun
$py "$here/make_mini_data.py" data >/dev/null
# The miniature plan's E1 and E4 (fine-tuning from pre-training and from scratch, a committee,
# the timed latency run), without E2, E3 and fastText: every kind of run, in half the time.
$py - "$here/mini_plan.toml" <<'PY'
import sys
plan = open(sys.argv[1]).read()
head = plan[:plan.index("[fasttext]")]
e1 = plan[plan.index("[e1]"):plan.index("[[e2]]")]
e4 = plan[plan.index("[e4]"):]
open("mpi_plan.toml", "w").write(head + e1 + e4)
PY
plan=mpi_plan.toml
common=(--data-dir data --jobs 1 --threads 1)
# Two "machines" a and b, one rank each.
two_machines() {  # two_machines args-of-reproduce...
  timeout 300 mpirun --oversubscribe --bind-to none -n 1 env TLM_NODE_NAME=a "$tlm" reproduce "$@" : \
    -n 1 env TLM_NODE_NAME=b "$tlm" reproduce "$@"
}

if ! two_machines --preset "$plan" "${common[@]}" --out two >two.txt 2>&1; then
  if grep -q "built without MPI" two.txt; then
    [ ! -e two ] || fail "a build without MPI made the experiment folder under mpirun"
    echo "SKIP: this tlm is built without MPI (it refuses to run as 2 ranks, as it must)"
    exit 77
  fi
  tail -30 two.txt
  fail "reproduce on 2 ranks failed"
fi
grep -q "2 ranks on 2 machine(s)" two.txt || { cat two.txt; fail "the ranks did not meet as two machines"; }
"$tlm" reproduce --preset "$plan" "${common[@]}" --out one >one.txt 2>&1 || { tail -30 one.txt; fail "reproduce failed"; }
$py "$here/check_results.py" two || fail "results of the 2-rank reproduce disagree with its runs"
# same_as ONE TWO WHERE: the runs of TWO (2 ranks) ran once each, spread as WHERE says ("node":
# both machines a and b ran trainers; "rank": both ranks of one machine ran runs), the timed run
# alone on its machine, and everything but timings equals ONE's (1 process).
same_as() {
  $py - "$@" <<'PY'
import glob, json, os, sys
ONE, TWO, WHERE = sys.argv[1:4]
def runs(top):
    return {os.path.basename(os.path.dirname(p)): json.load(open(p)) for p in glob.glob(top + "/runs/*/runner.json")}
one, two = runs(ONE), runs(TWO)
assert set(one) == set(two) and len(two) > 20, (len(one), len(two))
assert {r["kind"] for r in two.values()} >= {"pretrain", "finetune", "committee", "latency"}
assert all(r["attempts"] == 1 and r["status"] == "finished" for r in two.values()), \
    [(k, r["attempts"], r["status"]) for k, r in two.items() if r["attempts"] != 1 or r["status"] != "finished"]
want = {"a", "b"} if WHERE == "node" else {0, 1}
assert {r[WHERE] for r in two.values()} == want
assert {r[WHERE] for r in two.values() if r["kind"] in ("pretrain", "finetune")} == want
# The timed run had its machine to itself: no other run of that machine overlapped it.
(lat,) = [r for r in two.values() if r["kind"] == "latency"]
for k, r in two.items():
    if r is not lat and r["node"] == lat["node"]:
        assert r["ended_at"] <= lat["started_at"] or r["started_at"] >= lat["ended_at"], (k, r, lat)
# The same work: every model, every prediction file and every metric but timings, bit for bit.
def timing(key):
    return any(t in key for t in ("seconds", "per_s", "_ms", "_at"))
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not timing(k)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
compared = 0
for name in one:
    for f in sorted(glob.glob(f"{ONE}/runs/{name}/*")):
        base = os.path.basename(f)
        if os.path.isdir(f) or base in ("runner.json", "log.txt", "log.jsonl", "job.toml", "manifest.json", "tlm.lock"):
            continue
        if one[name]["kind"] == "latency":
            continue  # its measurements are timings
        g = TWO + f[len(ONE):]
        if base.endswith(".json"):
            assert strip(json.load(open(f))) == strip(json.load(open(g))), (f, g)
        else:
            assert open(f, "rb").read() == open(g, "rb").read(), (f, g)
        compared += 1
a, b = json.load(open(ONE + "/results.json")), json.load(open(TWO + "/results.json"))
for r in (a, b):  # what is measured in time, and where and how it ran
    del r["e4"]["latency"], r["manifest"]
    r["findings"] = [f for f in r["findings"] if f["id"] != "F4"]  # its verdict weighs latency
assert strip(a) == strip(b), [k for k in a if strip(a[k]) != strip(b[k])]
print(f"{TWO}: 2 ranks by {WHERE}: {len(two)} runs, each once; {compared} result files equal to one process's")
PY
}
same_as one two node || fail "the 2-rank reproduce differs from the 1-process one"
# Two ranks on one machine share its 2 threads and 2 runs at a time, as one process does.
shared=(--data-dir data --jobs 2 --threads 2 --fixed-threads)
timeout 300 mpirun --oversubscribe --bind-to none -n 2 "$tlm" reproduce --preset "$plan" "${shared[@]}" \
  --out shared2 >shared2.txt 2>&1 || { tail -30 shared2.txt; fail "2 ranks on one machine failed"; }
grep -q "2 ranks on 1 machine(s) (machine 1: ranks 0,1, 2 threads, 2 runs at a time)" shared2.txt ||
  { head shared2.txt; fail "the ranks did not meet as one machine"; }
# (2 threads for 2 runs at a time: one thread per run, as in the one-process run above)
same_as one shared2 rank || fail "2 ranks on one machine differ from one process"
[ "$(json two/results.json "d['manifest']['ranks']")" = 2 ] || fail "the results do not say 2 ranks"

# --- kill -9 of one rank once a trainer has checkpointed: the job ends (no hang), the same command
# continues it: interrupted trainers resume, nothing finished runs again, and it all adds up.
# The kill lands while a pre-training that has checkpointed is still running: polled every 10 ms,
# since a miniature pre-training runs hundreds of steps a second (at 8 epochs one once finished
# between a 100 ms poll and the kill, under ctest -j2; at 24 it failed once there after the last
# layer began to absorb its keys and values, which made pre-training faster).
sed -e 's/^epochs = 1$/epochs = 96/' "$plan" > long_plan.toml
two_machines --preset long_plan.toml "${common[@]}" --out killed >killed1.txt 2>&1 &
job=$!
unfinished_checkpoint() {
  local d
  for d in killed/runs/pretrain-*; do
    [ -e "$d/metrics.json" ] || ! compgen -G "$d/checkpoints/step-*/trainer_state.json" >/dev/null || return 0
  done
  return 1
}
deadline=$((SECONDS + 60))
until unfinished_checkpoint; do
  ((SECONDS < deadline)) || fail "no checkpoint to kill at"
  sleep 0.01
done
rank1=""
for pid in $(pgrep -f "tlm reproduce --preset long_plan.toml"); do
  tr '\0' '\n' </proc/$pid/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$pid
done
[ -n "$rank1" ] || fail "rank 1 not found"
kill -9 "$rank1"
if wait $job; then fail "the job went on after a rank died"; fi
finished_before=$(grep -l '"status": "finished"' killed/runs/*/runner.json | wc -l)
# The trainers the kill interrupted: the dead rank's child and the other rank's (mpirun's SIGTERM)
# checkpoint as they stop. Which ones they are depends on timing (pre-training or fine-tuning). A
# trainer is done when its metrics.json exists (what the runner skips by), whatever runner.json says.
interrupted=$(cd killed/runs && for d in pretrain-* finetune-*; do
  [ -e "$d/metrics.json" ] || ! compgen -G "$d/checkpoints/step-*/trainer_state.json" >/dev/null || echo "$d"
done)
[ -n "$interrupted" ] || { ls killed/runs; fail "the kill interrupted no trainer that had checkpointed"; }
two_machines --preset long_plan.toml "${common[@]}" --out killed >killed2.txt 2>&1 ||
  { tail -30 killed2.txt; fail "the rerun after kill -9 failed"; }
for d in $interrupted; do
  grep -Eq "reproduce: \[[0-9]+\] resume (pre-train|fine-tune) .*\(runs/$d\)" killed2.txt ||
    { cat killed2.txt; fail "the interrupted run $d was not resumed"; }
done
grep -q "already finished" killed2.txt || fail "no summary of finished runs"
$py "$here/check_results.py" killed || fail "results after the rerun disagree with the runs"
$py - "$finished_before" <<'PY' || fail "a run finished before the kill ran again"
import glob, json, sys
attempts = [json.load(open(p))["attempts"] for p in glob.glob("killed/runs/*/runner.json")]
finished_before = int(sys.argv[1])
# Runs finished before the kill were skipped: at most the interrupted ones ran twice.
assert sum(a > 1 for a in attempts) <= len(attempts) - finished_before, (attempts, finished_before)
print(f"kill -9 of a rank: {finished_before} runs had finished, {sum(a > 1 for a in attempts)} resumed or rerun")
PY
echo "PASS"
