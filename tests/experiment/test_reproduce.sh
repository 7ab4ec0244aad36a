#!/usr/bin/env bash
# tlm reproduce end to end on a miniature plan (synthetic data, tiny models, seconds): every
# experiment runs, results.json equals the runs' own metrics, a rerun skips everything, a runner
# killed mid-run resumes its runs on the next call with the same results as a straight run, the
# report renders, and bad plans fail with messages that name the problem.
# Usage: test_reproduce.sh path/to/tlm
set -euo pipefail
tlm="$(realpath "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
source "$here/../shell_helpers.sh"

$py "$here/make_mini_data.py" data
plan="$here/mini_plan.toml"
run=(--preset "$plan" --data-dir data --jobs 2 --threads 2)

# --- a full run: every experiment, results equal to the runs' metrics, a report with 6 plots
"$tlm" reproduce "${run[@]}" --out out >stdout.txt 2>stderr.txt || { tail -30 stderr.txt; fail "reproduce failed"; }
grep -q "^report: .*/out/report.html" stdout.txt || fail "no report path printed"
for f in results.json report.md report.html plan.json; do [ -s "out/$f" ] || fail "out/$f missing"; done
[ "$(ls out/plots/*.svg | wc -l)" -eq 6 ] || fail "expected 6 plots, got $(ls out/plots)"
[ "$(grep -c '<svg' out/report.html)" -eq 6 ] || fail "report.html does not inline 6 plots"
grep -q 'src=\|href="http' out/report.html && fail "report.html is not self-contained"
$py "$here/check_results.py" out || fail "results.json disagrees with the runs"
# The report in headless Chromium: a screenshot with the 6 plots drawn.
rc=0
$py "$here/../../scripts/report_screenshot.py" out/report.html --png shot.png --height 6000 || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 77 ] || fail "the report does not render its plots in Chromium"
echo "full run: ok ($(grep -c '' stderr.txt) log lines)"

# --- a rerun skips every run and rebuilds the same results
cp out/results.json first.json
"$tlm" reproduce "${run[@]}" --out out >stdout2.txt 2>stderr2.txt || fail "rerun failed"
grep -q "reproduce: 0 finished, 41 skipped" stderr2.txt || { cat stderr2.txt; fail "rerun did not skip all 41 runs"; }
$py - <<'PY' || fail "the rerun's results differ"
import json
a, b = json.load(open("first.json")), json.load(open("out/results.json"))
for k in ("e1", "e2", "e3", "pretraining", "findings"):
    assert a[k] == b[k], k
PY
[ "$("$tlm" reproduce "${run[@]}" --out out --dry-run | grep -c '^done ')" -eq 41 ] || fail "--dry-run: not 41 runs done"
# tlm report rebuilds the report from results.json alone.
cp out/report.md first.md
cp out/report.html first.html
rm out/report.md out/report.html
"$tlm" report out >/dev/null
cmp first.md out/report.md && cmp first.html out/report.html || fail "tlm report did not rebuild the same report"
echo "rerun and tlm report: ok"

# --- a runner killed mid-run: its trainers checkpoint (SIGTERM from the dying parent), the next
# call resumes them, and a resumed run ends exactly where a straight run does.
sed -e 's/^epochs = 1$/epochs = 60/' "$plan" > long_plan.toml
long=(--preset long_plan.toml --data-dir data --jobs 2 --threads 2 --out killed)
"$tlm" reproduce "${long[@]}" >/dev/null 2>killed1.txt &
runner=$!
for _ in $(seq 1 300); do
  compgen -G "killed/runs/pretrain-*/checkpoints/step-*/trainer_state.json" >/dev/null && break
  sleep 0.1
done
compgen -G "killed/runs/pretrain-*/checkpoints/step-*/trainer_state.json" >/dev/null || fail "no checkpoint to kill at"
kill -9 $runner
wait $runner 2>/dev/null || true
"$tlm" reproduce "${long[@]}" >/dev/null 2>killed2.txt || { tail -20 killed2.txt; fail "resume after kill failed"; }
grep -q "reproduce: \[[0-9]*\] resume pre-train" killed2.txt || { cat killed2.txt; fail "nothing was resumed"; }
$py "$here/check_results.py" killed || fail "results after resume disagree with the runs"
# The resumed pre-training against the same command run straight through.
resumed=$(grep -l '"attempts": 2' killed/runs/pretrain-*/runner.json | head -1)
[ -n "$resumed" ] || fail "no pre-training run records a second attempt"
dir=$(dirname "$resumed")
mapfile -t args < <($py -c "
import json,sys
a = json.load(open(sys.argv[1]))['args']
i = a.index('--resume') if '--resume' in a else a.index('--out')
a[i + 1] = 'straight'; a[i] = '--out'
print('\n'.join(a))" "$resumed")
(cd killed && "$tlm" "${args[@]}" >/dev/null 2>&1) || fail "straight run failed"
cmp "$dir/model.safetensors" killed/straight/model.safetensors || fail "resumed model differs from a straight run"
echo "kill and resume: ok ($(basename "$dir") bit-identical to a straight run)"

# --- bad plans: clear messages
printf 'name = "x"\nseeds = 2\n[vocab]\nsize = 10\n' > bad1.toml
expect_error 'plan: [vocab] needs the key "corpora"' "$tlm" reproduce --preset bad1.toml --data-dir data --out bad
sed -e 's/^tasks = \["topics"\]$/tasks = ["nope"]/' "$plan" > bad2.toml
expect_error 'plan: [tasks] needs the key "nope"' "$tlm" reproduce --preset bad2.toml --data-dir data --out bad
printf 'seeds = [\n' > bad3.toml
expect_error "bad3.toml:" "$tlm" reproduce --preset bad3.toml --data-dir data --out bad
expect_error "neither a preset" "$tlm" reproduce --preset no-such-plan --out bad
expect_error "--scale must be in (0, 1]" "$tlm" reproduce --preset "$plan" --data-dir data --scale 2 --out bad
echo "bad plans: ok"
echo "PASS"
