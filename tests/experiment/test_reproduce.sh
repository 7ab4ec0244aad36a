#!/usr/bin/env bash
# tlm reproduce end to end on a miniature plan (synthetic data, tiny models, seconds): every
# experiment runs, results.json equals the runs' own metrics, a rerun skips everything, a runner
# killed mid-run resumes its runs on the next call with the same results as a straight run, the
# report renders (the fastText comparison first), and bad plans fail with messages that name the
# problem.
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
# A test text planted inside a pre-training document: it must be removed before any use.
planted=$($py -c "import csv; print(next(csv.reader(open('data/task/test.csv')))[1])")
echo "zebraplanted notes: $planted as the tests say" >>data/corpora/near.txt
plan="$here/mini_plan.toml"
run=(--preset "$plan" --data-dir data --jobs 2 --threads 2)

# --- a runner whose trainers are killed between a checkpoint's last write and its rename (its
# trainer_state.json is written, the folder not yet renamed): those runs fail, and the next call
# continues them (a partial folder is never taken for a checkpoint, so nothing sticks)
if TLM_FAULT_INJECT=kill-before-checkpoint-rename "$tlm" reproduce "${run[@]}" --out out >/dev/null 2>fault.txt; then
  fail "the fault injection did not stop the runner's trainers"
fi
grep -q "FAILED pre-train" fault.txt || { tail -20 fault.txt; fail "no pre-training run was killed"; }
compgen -G "out/runs/pretrain-*/checkpoints/step-*.tmp-*/trainer_state.json" >/dev/null ||
  fail "the kill left no partial checkpoint to trip over"

# --- a full run: every experiment, results equal to the runs' metrics, a report with 7 plots (two E2 curves)
"$tlm" reproduce "${run[@]}" --out out >stdout.txt 2>stderr.txt || { tail -30 stderr.txt; fail "reproduce failed"; }
grep -q "removed 1 partial checkpoint" out/runs/pretrain-*/log.txt || fail "partial checkpoints were not cleaned up"
$py - <<'PY' || fail "the planted test text was not removed and counted"
import glob, json, os
cleaned = {json.load(open(p))["corpus"]: os.path.dirname(p) for p in glob.glob("out/runs/clean-*/clean.json")}
assert set(cleaned) == {"near", "far"}, cleaned
near = json.load(open(cleaned["near"] + "/clean.json"))
assert near["removed"] >= 1 and near["removed_by_task"].get("topics", 0) >= 1, near
assert "zebraplanted" not in open(cleaned["near"] + "/corpus.txt").read()
assert near["kept"] == near["documents"] - near["removed"]
# The one-file task: its 6 test texts (3 per label, drawn by test_seed) are removed from "far",
# its 10 training texts stay there and are all the vocabulary sees of it.
far = json.load(open(cleaned["far"] + "/clean.json"))
assert far["removed_by_task"].get("onefile") == 6, far
kept = open(cleaned["far"] + "/corpus.txt").read().splitlines()
kept_onefile = {t for t in kept if t.startswith("onefile entry")}
seen = None
for d in glob.glob("out/runs/texts-*"):
    lines = open(d + "/texts.txt").read().splitlines()
    if any(t.startswith("onefile entry") for t in lines):
        seen = set(lines)
assert seen is not None and len(seen) == 10 and seen == kept_onefile, (seen, kept_onefile)
res = json.load(open("out/results.json"))
assert res["decontamination"]["near"]["removed"] == near["removed"], res.get("decontamination")
print("decontamination: near lost %d of %d documents" % (near["removed"], near["documents"]))
PY
grep -q "^report: .*/out/report.html" stdout.txt || fail "no report path printed"
for f in results.json report.md report.html plan.json; do [ -s "out/$f" ] || fail "out/$f missing"; done
[ "$(ls out/plots/*.svg | wc -l)" -eq 7 ] || fail "expected 7 plots, got $(ls out/plots)"
[ "$(grep -c '<svg' out/report.html)" -eq 7 ] || fail "report.html does not inline 7 plots"
grep -q 'src=\|href="http' out/report.html && fail "report.html is not self-contained"
grep -q "validation accuracy per epoch" out/plots/e1-topics-shallow.svg ||
  fail "with test_every = \"end\" the per-epoch plot is not of validation accuracy"
$py "$here/check_results.py" out || fail "results.json disagrees with the runs"
# fastText: one run per seed of the task, trained on that seed's 8 examples per label (12 drawn, 4
# held out for validation), as the tiny models' runs; its report table comes first.
$py - <<'PY' || fail "the fastText runs did not train on the fine-tuning sample"
import glob, json
runs = sorted(glob.glob("out/runs/fasttext-*/metrics.json"))
assert len(runs) == 2, runs
for r in runs:
    m = json.load(open(r))
    labels = len(m["labels"])
    assert (m["train_examples"], m["valid_examples"], m["test_examples"]) == (8 * labels, 4 * labels, 10 * labels), m
    assert len(open(r.replace("metrics.json", "train.txt")).read().splitlines()) == 8 * labels
    assert len(m["grid"]) == 4 and m["program"]["path"].endswith("fasttext"), m["grid"]
PY
# The setup names each task's own counts (onefile overrides the plan's [finetune] ones).
grep -q "Fine-tuning: 4 training examples per label of which 1 are held out for validation, 3 test examples per label (onefile); 12 training examples per label of which 4 are held out for validation, 10 test examples per label (topics)" out/report.md ||
  fail "the report's setup does not give each task's fine-tuning counts: $(grep -o 'Fine-tuning: [^.]*' out/report.md)"
first_table=$(grep -m1 -n '^| ' out/report.md | cut -d: -f1)
sed -n "$((first_table - 4)),$((first_table))p" out/report.md | grep -q "## Tiny models against fastText" ||
  fail "the report's first table is not the fastText comparison"
# The check can fail: each of these edits of results.json must be caught (the file is restored).
cp out/results.json pristine.json
for edit in "r['e1'][0]['pretrained']['chosen_lr'] = r['e1'][0]['pretrained']['lrs'][-1] if r['e1'][0]['pretrained']['chosen_lr'] != r['e1'][0]['pretrained']['lrs'][-1] else r['e1'][0]['pretrained']['lrs'][0]" \
            "m = r['e4']['mcnemar'][0]; m['committee_right_deep_wrong'], m['deep_right_committee_wrong'] = m['deep_right_committee_wrong'] + 1, m['committee_right_deep_wrong']" \
            "r['e4']['deep']['runs'][0], r['e4']['deep']['runs'][1] = r['e4']['deep']['runs'][1], r['e4']['deep']['runs'][0]" \
            "r['e4']['latency']['comparison']['round_p50_ms']['reference'][0] *= 1.5" \
            "d = next(iter(r['decontamination'].values())); d['removed'] += 1" \
            "f = r['findings'][-1]; f['verdict'] = 'held' if f['verdict'] != 'held' else 'inconclusive'" \
            "a = r['fasttext'][0]['fasttext']; a['chosen_setting'] = a['settings'][-1] if a['chosen_setting'] != a['settings'][-1] else a['settings'][0]" \
            "r['fasttext'][0]['fasttext']['test_accuracy'][0] += 0.01" \
            "m = r['fasttext'][-1]['mcnemar'][0]; m['model_right_fasttext_wrong'] += 1" \
            "r['e4']['fasttext']['runs'].reverse()" \
            "r['e4']['fasttext']['at_grid_edge'] = []" \
            "r['e1'][0]['scratch']['curve']['valid_accuracy_mean'][2] += 0.01"; do
  $py -c "
import json
r = json.load(open('pristine.json'))
$edit
json.dump(r, open('out/results.json', 'w'))" || fail "could not apply: $edit"
  $py "$here/check_results.py" out >/dev/null 2>&1 && fail "check_results.py missed: $edit"
done
cp pristine.json out/results.json
# The report in headless Chromium (scripts/install-deps.sh installs it): a screenshot with the 6
# plots drawn. A missing Chromium is a failure, not a skip.
$py "$here/../../scripts/report_screenshot.py" out/report.html --png shot.png --height 6000 --plots 7 ||
  fail "the report does not render its plots in Chromium (or Chromium is missing)"
echo "full run: ok ($(grep -c '' stderr.txt) log lines)"

# --- a rerun skips every run and rebuilds the same results
cp out/results.json first.json
"$tlm" reproduce "${run[@]}" --out out >stdout2.txt 2>stderr2.txt || fail "rerun failed"
grep -q "reproduce: 0 finished, 63 skipped" stderr2.txt || { cat stderr2.txt; fail "rerun did not skip all 63 runs"; }
$py - <<'PY' || fail "the rerun's results differ"
import json
a, b = json.load(open("first.json")), json.load(open("out/results.json"))
for k in ("e1", "e2", "e3", "pretraining", "findings", "fasttext"):
    assert a[k] == b[k], k
PY
[ "$("$tlm" reproduce "${run[@]}" --out out --dry-run | grep -c '^done ')" -eq 63 ] || fail "--dry-run: not 63 runs done"
# tlm report rebuilds the report from results.json alone.
cp out/report.md first.md
cp out/report.html first.html
rm out/report.md out/report.html
"$tlm" report out >/dev/null
cmp first.md out/report.md && cmp first.html out/report.html || fail "tlm report did not rebuild the same report"
# A report compared with other runs of the plan marks a verdict that differs as not robust.
mkdir -p other
$py -c "
import json
r = json.load(open('out/results.json'))
f = r['findings'][0]
f['verdict'] = 'did not hold' if f['verdict'] != 'did not hold' else 'held'
json.dump(r, open('other/results.json', 'w'))"
"$tlm" report out --with other >/dev/null
grep -q "## Robustness" out/report.md || fail "no robustness section"
grep -q "| F1 (not robust) |" out/report.md || fail "a verdict that differs is not marked"
grep -q "| F2 |" out/report.md || fail "a verdict that agrees is marked"
"$tlm" report out >/dev/null
echo "rerun and tlm report: ok"

# --- a runner killed mid-run: its trainers checkpoint (SIGTERM from the dying parent), the next
# call resumes them, and a resumed run ends exactly where a straight run does.
# (long enough that the kill lands mid-way even on a loaded machine: the first checkpoint comes at
# step 5 of 1,250)
sed -e 's/^epochs = 1$/epochs = 50/' "$plan" > long_plan.toml
# (--fixed-threads: the straight run below has the threads of the resumed run's last attempt)
long=(--preset long_plan.toml --data-dir data --jobs 2 --threads 2 --fixed-threads --out killed)
"$tlm" reproduce "${long[@]}" >/dev/null 2>killed1.txt &
runner=$!
wait_for_file "killed/runs/pretrain-*/checkpoints/step-*/trainer_state.json" 60 "no checkpoint to kill at"
kill -9 $runner
wait $runner 2>/dev/null || true
"$tlm" reproduce "${long[@]}" >/dev/null 2>killed2.txt || { tail -20 killed2.txt; fail "resume after kill failed"; }
grep -q "reproduce: \[[0-9]*\] resume pre-train" killed2.txt || { cat killed2.txt; fail "nothing was resumed"; }
$py "$here/check_results.py" killed || fail "results after resume disagree with the runs"
# The resumed pre-training against the same job file run straight through in another folder.
resumed=$(grep -l '"attempts": 2' killed/runs/pretrain-*/runner.json | head -1)
[ -n "$resumed" ] || fail "no pre-training run records a second attempt"
dir=$(dirname "$resumed")
sed -e 's|^out = .*|out = "straight"|' "$dir/job.toml" > killed/straight.toml
(cd killed && "$tlm" pretrain --config straight.toml >/dev/null 2>&1) || fail "straight run failed"
cmp "$dir/model.safetensors" killed/straight/model.safetensors || fail "resumed model differs from a straight run"
echo "kill and resume: ok ($(basename "$dir") bit-identical to a straight run)"

# --- idle threads: a long pre-training left alone (its curve's other end and every fine-tuning done)
# is stopped at a step and continued from its checkpoint with both threads; with --fixed-threads
# it keeps its one thread
$py - "$plan" <<'PY'
import sys
plan = open(sys.argv[1]).read()
head = plan[:plan.index("[fasttext]")].replace("seeds = 2", "seeds = 1")
open("grow_plan.toml", "w").write(head + """[[e2]]
task = "onefile"
architecture = "shallow"
sequences = [400, 400]
epochs = [1, 100]
""")
PY
"$tlm" reproduce --preset grow_plan.toml --data-dir data --jobs 2 --threads 2 --grow-after 0.5 --out grow \
  >/dev/null 2>grow.txt || { tail -20 grow.txt; fail "reproduce with idle threads failed"; }
grep -q "1 threads idle: continuing pre-train shallow on near (400 sequences x 100 epochs" grow.txt ||
  { cat grow.txt; fail "the idle thread was not given to the long pre-training"; }
grep -q "1 continued with more threads" grow.txt || fail "the summary does not count the continued run"
long_run=$(dirname "$(grep -l "x 100 epochs" grow/runs/pretrain-*/runner.json)")
[ "$(json "$long_run/runner.json" "d['threads_by_attempt']")" = "[1, 2]" ] || fail "threads by attempt not [1, 2]"
grep -q "resuming .* at step" "$long_run/log.txt" || fail "the continued run did not resume from its checkpoint"
$py "$here/check_results.py" grow || fail "results with a continued run disagree with the runs"
"$tlm" reproduce --preset grow_plan.toml --data-dir data --jobs 2 --threads 2 --grow-after 0.5 --fixed-threads \
  --out fixed >/dev/null 2>fixed.txt || fail "reproduce --fixed-threads failed"
! grep -q "threads idle" fixed.txt || fail "--fixed-threads gave a run more threads"
echo "idle threads: ok"

# --- bad plans: every mistake is caught when the plan is loaded, before any run starts (the
# experiment folder is not even made), with a message that names the table and key
bad_plan() {  # bad_plan "expected message" sed-expression...
  local want="$1"; shift
  sed "$@" "$plan" > bad.toml
  expect_error "$want" "$tlm" reproduce --preset bad.toml --data-dir data --out bad
  expect_error "$want" "$tlm" reproduce --preset bad.toml --data-dir data --out bad --dry-run
  [ ! -e bad ] || fail "a refused plan made its experiment folder"
}
printf 'name = "x"\nseeds = 2\n[vocab]\nsize = 10\n' > bad1.toml
expect_error 'plan: [top level] needs the key "architectures"' "$tlm" reproduce --preset bad1.toml --data-dir data --out bad
bad_plan 'plan: [e1] tasks: "nope" is not in [tasks]' -e 's/^tasks = \["topics"\]$/tasks = ["nope"]/'
bad_plan 'unknown table or key "e3x" (did you mean "e3"?)' -e 's/^\[e3\]$/[e3x]/'
bad_plan '[e2] sequences: expected a non-empty list of positive integers' -e 's/^sequences = \[400, 800\]$/sequences = []/'
bad_plan '[e2] epochs: 1 values for 2 sequences' -e 's/^epochs = \[1, 2\]$/epochs = [2]/'
bad_plan '[finetune] lrs: expected a non-empty list of positive numbers' -e 's/^lrs = .*/lrs = [-1e-3]/'
bad_plan '[finetune] unknown key "epochz" (did you mean "epochs"?)' -e 's/^epochs = 10$/epochz = 10/'
bad_plan 'layers (--layers): expected an integer, got "one"' -e '0,/^layers = 1$/s//layers = "one"/'
bad_plan 'layers (--layers): expected an integer, got 1.5' -e '0,/^layers = 1$/s//layers = 1.5/'
bad_plan 'lr (--lr): -0.001 is out of range (must be >= 0)' -e 's/^lr = 3e-3$/lr = -1e-3/'
bad_plan '--hidden 32 is not a multiple of --heads 3' -e '0,/^heads = 2$/s//heads = 3/'
bad_plan '[pretrain] seed is set by the plan for each run' -e 's/^\[pretrain\]$/[pretrain]\nseed = 4/'
bad_plan 'ffn = 64 differs from the pre-training (ffn = 0)' -e 's/^\[finetune\]$/[finetune]\nffn = 64/'
bad_plan 'cased = true differs from the pre-training (cased = false)' \
  -e '0,/^format = "csv"$/s//format = "csv"\nfinetune = { cased = true }/'
bad_plan '[architectures.shallow] conv_kernel 3,33 is wider than hidden 32' \
  -e '0,/^heads = 2$/s//heads = 2\nconv_layers = 1\nconv_kernel = "3,33"/'
bad_plan 'lrs (--lrs): -1 is out of range (must be >= 1e-06 and <= 100)' -e 's/^lrs = \[0.5, 1.0\]$/lrs = [0.5, -1]/'
bad_plan '[fasttext] per_label_train is set by the plan for each run' \
  -e 's/^word_ngrams = \[1\]$/word_ngrams = [1]\nper_label_train = 5/'
printf 'seeds = [\n' > bad3.toml
expect_error "bad3.toml:" "$tlm" reproduce --preset bad3.toml --data-dir data --out bad
expect_error "neither a preset" "$tlm" reproduce --preset no-such-plan --out bad
expect_error "--scale must be in (0, 1]" "$tlm" reproduce --preset "$plan" --data-dir data --scale 2 --out bad
echo "bad plans: ok"
echo "PASS"
