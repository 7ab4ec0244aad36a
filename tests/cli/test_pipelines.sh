#!/usr/bin/env bash
# End-to-end tests of the pipelines through the real binary, on the embedded Debian data:
# vocabulary, pre-training, fine-tuning from it and from scratch, a committee of 3, predict,
# overlap, exact resume after SIGKILL, a checkpoint read by the PyTorch mirror, bad input.
# Usage: test_pipelines.sh path/to/tlm   (skips, exit 77, without the embedded data packages)
set -euo pipefail
tlm="$(realpath "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
py=/usr/bin/python3
[ -f /usr/share/wordnet/data.noun ] || { echo "SKIP: wordnet-base is not installed"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
source "$root/tests/shell_helpers.sh"

"$tlm" data embedded --out emb >/dev/null
W=emb/tasks/wordnet-supersense
head -n 6000 emb/corpora/wordnet-glosses.txt > corpus.txt
"$tlm" vocab train --corpus corpus.txt --size 1500 --out vocab.txt >/dev/null
common=(--max-len 24 --batch 32 --threads 2)
model=(--layers 1 --hidden 32 --heads 2)

# --- pre-training: the loss falls
"$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${model[@]}" "${common[@]}" --sequences 3000 \
  --epochs 3 --lr 2e-3 --warmup 0.1 --log-every 5 --out pre >pre.txt 2>&1
$py - <<'PY' || fail "pre-training loss did not fall"
import json
steps = [json.loads(l) for l in open("pre/log.jsonl") if '"loss"' in l]
first, last = sum(s["loss"] for s in steps[:3]) / 3, sum(s["loss"] for s in steps[-3:]) / 3
print(f"pretrain loss {first:.3f} -> {last:.3f}")
assert last < first - 0.3, (first, last)
m = json.load(open("pre/metrics.json"))
assert m["final"]["valid_mlm_loss"] > 0 and m["final"]["unigram_loss"] > 0
PY
for f in config.json model.safetensors log.jsonl metrics.json manifest.json vocab.txt; do
  [ -s "pre/$f" ] || fail "pre/$f missing"
done
[ "$(json pre/config.json "d['architectures'][0]")" = BertForMaskedLM ] || fail "config.json is not HF's"
[ "$(json pre/manifest.json "d['status']")" = finished ] || fail "manifest status"
# The manifest names the source the binary was built from (taken at build time, "-dirty" with
# local changes to tracked files), here this checkout's, which make test has just built.
if head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
  [ -z "$(git -C "$root" status --porcelain --untracked-files=no)" ] || head="$head-dirty"
  got=$(json pre/manifest.json "d['commit']")
  [ "$got" = "$head" ] || fail "the manifest names commit $got, the checkout is at $head (is the build older than it?)"
else
  echo "SKIP (commit): $root is not a git checkout"
fi

# --- fine-tuning from the pre-trained encoder and from scratch, on four supersenses: above
# chance (25%; with 200 test examples 35% is 3 standard deviations above it)
printf 'noun.animal\nnoun.artifact\nnoun.person\nnoun.plant\n' >four.txt
$py -c "
import csv
keep = open('four.txt').read().split()
for part in ('train', 'test'):
    rows = [r for r in csv.reader(open('$W/' + part + '.csv')) if r[0] in keep]
    csv.writer(open('four-' + part + '.csv', 'w')).writerows(rows)"
ft=(--train four-train.csv --test four-test.csv --format csv --classes four.txt --per-label-train 200
    --per-label-test 50 --epochs 8 --lr 3e-3 --log-every 50)
"$tlm" finetune "${ft[@]}" "${common[@]}" --init pre --out ft-pre >/dev/null 2>&1
"$tlm" finetune "${ft[@]}" "${common[@]}" "${model[@]}" --scratch --vocab vocab.txt --out ft-scratch >/dev/null 2>&1
for r in ft-pre ft-scratch; do
  acc=$(json $r/metrics.json "d['test']['accuracy']")
  echo "$r test accuracy $acc"
  $py -c "import sys; sys.exit(0 if float('$acc') >= 0.35 else 1)" || fail "$r accuracy $acc is not above chance"
  [ "$(json $r/metrics.json "len(d['test']['confusion'])")" = 4 ] || fail "$r confusion matrix"
  json $r/metrics.json "d['best']['epoch']" >/dev/null || fail "$r best epoch"
done

# --- with a validation split the best epoch is chosen on it, never on the test set
"$tlm" finetune "${ft[@]}" "${common[@]}" --init pre --valid-per-label 20 --epochs 3 --out ft-valid >/dev/null 2>&1
$py - <<'PY' || fail "validation split"
import json
m = json.load(open("ft-valid/metrics.json"))
assert m["best"]["chosen_by"] == "valid_accuracy", m["best"]
assert m["valid"]["confusion"] and sum(map(sum, m["valid"]["confusion"])) == 80
epochs = [json.loads(l) for l in open("ft-valid/log.jsonl") if '"valid_accuracy"' in l]
assert len(epochs) == 3 and all("test_accuracy" in e for e in epochs)
assert m["best"]["valid_accuracy"] == max(e["valid_accuracy"] for e in epochs)
print("validation split: best epoch", m["best"]["epoch"], "by validation accuracy")
PY

# --- --test-every end scores the test set once, on the final weights: the same training (scoring
# draws nothing), the same final metrics and per-item predictions, no test accuracy before the end
"$tlm" finetune "${ft[@]}" "${common[@]}" --init pre --valid-per-label 20 --epochs 3 --test-every end \
  --out ft-valid-end >/dev/null 2>&1
cmp -s ft-valid/model.safetensors ft-valid-end/model.safetensors || fail "--test-every end changed the training"
cmp -s ft-valid/test_predictions.safetensors ft-valid-end/test_predictions.safetensors ||
  fail "--test-every end changed the test predictions"
$py - <<'PY' || fail "--test-every end"
import json
a, b = (json.load(open(f + "/metrics.json")) for f in ("ft-valid", "ft-valid-end"))
assert a["test"] == b["test"] and a["final"] == b["final"], (a["test"], b["test"])
epochs = [json.loads(l) for l in open("ft-valid-end/log.jsonl") if '"valid_accuracy"' in l]
assert len(epochs) == 3 and ["test_accuracy" in e for e in epochs] == [False, False, True], epochs
assert [e["valid_accuracy"] for e in epochs] == [e["valid_accuracy"] for e in a["history"]]
print("--test-every end: the test set scored once, final metrics and predictions unchanged")
PY

# --- a committee of 3: its probabilities are the mean of the members'
"$tlm" finetune "${ft[@]}" "${common[@]}" --init pre --seed 7 --out ft-pre2 >/dev/null 2>&1
$py -c "
import csv
rows = list(csv.reader(open('four-test.csv')))[:60]
open('texts.txt', 'w').write(''.join(r[1] + '\n' for r in rows))
"
for m in ft-pre ft-scratch ft-pre2; do "$tlm" predict --model $m --probs --max-len 24 --input texts.txt >p-$m.jsonl; done
"$tlm" predict --model ft-pre --model ft-scratch --model ft-pre2 --probs --max-len 24 --input texts.txt >p-committee.jsonl
$py - <<'PY' || fail "committee probabilities are not the mean of the members'"
import json
members = [[json.loads(l)["probs"] for l in open(f"p-{m}.jsonl")] for m in ("ft-pre", "ft-scratch", "ft-pre2")]
committee = [json.loads(l) for l in open("p-committee.jsonl")]
assert len(committee) == 60
for i, c in enumerate(committee):
    for label, p in c["probs"].items():
        mean = sum(m[i][label] for m in members) / 3
        assert abs(mean - p) < 1e-6, (i, label, mean, p)
    assert c["label"] == max(c["probs"], key=c["probs"].get)
print("committee = mean of members on 60 texts")
PY
"$tlm" eval --model ft-pre --model ft-scratch --model ft-pre2 --data four-test.csv --format csv \
  --classes four.txt --max-len 24 --out eval.json >/dev/null
$py - <<'PY' || fail "eval JSON inconsistent"
import json
e = json.load(open("eval.json"))
assert len(e["members"]) == 3 and e["committee"]["members"] == 3
assert [r["k"] for r in e["by_size"]] == [1, 2, 3]
assert abs(e["by_size"][2]["first_k_accuracy"] - e["committee"]["accuracy"]) < 1e-12
assert abs(e["by_size"][0]["first_k_accuracy"] - e["members"][0]["accuracy"]) < 1e-12
assert abs(e["by_size"][0]["mean_accuracy"] - sum(m["accuracy"] for m in e["members"]) / 3) < 1e-9
assert 0 <= e["majority_vote"]["accuracy"] <= 1
print("eval: committee", round(e["committee"]["accuracy"], 4), "members", [round(m["accuracy"], 4) for m in e["members"]])
PY

# --- the PyTorch mirror gives the same probabilities as tlm predict
"$tlm" tokenize --vocab ft-pre/vocab.txt --max-len 24 --ids-only <texts.txt >ids.jsonl
$py "$root/ref/predict_mirror.py" ft-pre <ids.jsonl >p-mirror.jsonl
same_probs() {  # same_probs MIRROR.jsonl TLM.jsonl: the 60 texts' probabilities agree within 1e-5
  $py - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l)["probs"] for l in open(sys.argv[1])]
b = [json.loads(l)["probs"] for l in open(sys.argv[2])]
worst = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x)
print(f"{sys.argv[2]}: mirror vs tlm predict: max probability difference {worst:.2e}")
assert len(a) == len(b) == 60 and worst < 1e-5
PY
}
same_probs p-mirror.jsonl p-ft-pre.jsonl || fail "PyTorch mirror disagrees with tlm predict"

# --- the paper's convolutional BERT-1 (a convolutional front-end before one transformer layer):
# pre-training takes the MLM loss well under the unigram baseline (measured: 5.3 against 6.24;
# the plain model of the same size reaches 6.0), fine-tuning from it keeps the front-end, the
# PyTorch mirror predicts as tlm does (BatchNorm on running statistics), and a fine-tune that
# contradicts the pre-trained front-end is refused
conv=(--layers 1 --hidden 32 --heads 2 --conv-layers 2 --conv-kernel 3 --conv-channels 8)
"$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${conv[@]}" "${common[@]}" --sequences 5700 --epochs 3 \
  --lr 5e-3 --warmup 0.1 --log-every 50 --out pre-conv >/dev/null 2>&1
$py - <<'PY' || fail "convolutional pre-training"
import json
m = json.load(open("pre-conv/metrics.json"))["final"]
print(f"conv BERT-1: validation MLM loss {m['valid_mlm_loss']:.3f}, unigram baseline {m['unigram_loss']:.3f}")
assert m["valid_mlm_loss"] < m["unigram_loss"] - 0.5, m
assert json.load(open("pre-conv/config.json"))["tlm"]["conv"] == {"layers": 2, "kernel": [3, 3], "channels": 8}
PY
"$tlm" finetune "${ft[@]}" "${common[@]}" --init pre-conv --epochs 2 --out ft-conv >/dev/null 2>&1
[ "$(json ft-conv/config.json "d['tlm']['conv']['layers']")" = 2 ] || fail "fine-tuning dropped the front-end"
"$tlm" tokenize --vocab ft-conv/vocab.txt --max-len 24 --ids-only <texts.txt >ids-conv.jsonl
"$tlm" predict --model ft-conv --probs --max-len 24 --input texts.txt >p-ft-conv.jsonl
$py "$root/ref/predict_mirror.py" ft-conv <ids-conv.jsonl >p-mirror-conv.jsonl
same_probs p-mirror-conv.jsonl p-ft-conv.jsonl || fail "PyTorch mirror disagrees with tlm predict (convolutional)"
# the paper's padded batches (--pad-to): the front-end sees [PAD] rows, in training and in predict
"$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${conv[@]}" "${common[@]}" --pad-to 24 --sequences 1000 \
  --epochs 1 --lr 5e-3 --out pre-pad >/dev/null 2>&1
[ "$(json pre-pad/config.json "d['tlm']['conv']['pad_to']")" = 24 ] || fail "--pad-to is not in config.json"
"$tlm" finetune "${ft[@]}" "${common[@]}" --init pre-pad --epochs 1 --out ft-pad >/dev/null 2>&1
"$tlm" predict --model ft-pad --probs --max-len 24 --input texts.txt >p-ft-pad.jsonl
$py "$root/ref/predict_mirror.py" ft-pad <ids-conv.jsonl >p-mirror-pad.jsonl
same_probs p-mirror-pad.jsonl p-ft-pad.jsonl || fail "PyTorch mirror disagrees with tlm predict (padded)"
expect_error "shorter than --max-len" "$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${conv[@]}" \
  --max-len 24 --pad-to 16 --out pre-bad
expect_error "differs from the --init run" "$tlm" finetune "${ft[@]}" "${common[@]}" --init pre-conv \
  --conv-channels 16 --out ft-conv-bad
expect_error "give --conv-layers N" "$tlm" pretrain --corpus corpus.txt --vocab vocab.txt --conv-kernel 16,3 \
  --out pre-bad
expect_error "expected k or seq,hidden" "$tlm" pretrain --corpus corpus.txt --vocab vocab.txt --conv-layers 1 \
  --conv-kernel 3x3 --out pre-bad
expect_error "padded length" "$tlm" finetune "${ft[@]}" --max-len 32 --batch 32 --threads 2 --init pre-pad \
  --out ft-pad-bad
[ ! -e pre-bad ] && [ ! -e ft-conv-bad ] && [ ! -e ft-pad-bad ] || fail "a refused command left a run folder"

# --- the paper's per-epoch schedule: HF's linear warmup/decay stepped once per epoch (4 epochs,
# 1 of warmup: rates 0, 1, 2/3, 1/3 of the peak, constant within each epoch); one epoch with a
# warmup of 1 is capped to none, so it trains at the peak rather than at 0
"$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${model[@]}" --max-len 24 --batch 256 --threads 2 \
  --sequences 1024 --epochs 4 --warmup 1 --schedule per-epoch --lr 1e-3 --log-every 1 --out sched >/dev/null 2>&1
"$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${model[@]}" --max-len 24 --batch 256 --threads 2 \
  --sequences 1024 --epochs 1 --warmup 1 --schedule per-epoch --lr 1e-3 --log-every 1 --out sched1 >/dev/null 2>&1
# a huge warmup never lifts the rate above the peak (it once overflowed into rates 20x the peak)
for sch in per-step per-epoch; do
  "$tlm" pretrain --corpus corpus.txt --vocab vocab.txt "${model[@]}" --max-len 24 --batch 256 --threads 2 \
    --sequences 1024 --epochs 2 --warmup 1e30 --schedule $sch --lr 1e-3 --log-every 1 --out huge-$sch >/dev/null 2>&1
done
$py - <<'PY' || fail "per-epoch schedule"
import json
def rates(run):
    return [(r["epoch"], r["lr"]) for r in map(json.loads, open(run + "/log.jsonl")) if "lr" in r]
got = rates("sched")
assert len(got) == 16, got
for epoch, lr in got:
    assert abs(lr - 1e-3 * [0, 1, 2 / 3, 1 / 3][epoch]) < 1e-12, got
assert all(abs(lr - 1e-3) < 1e-12 for _, lr in rates("sched1")), rates("sched1")
assert all(0 <= lr < 1e-6 for _, lr in rates("huge-per-step")), rates("huge-per-step")
# per epoch the warmup is cut to epochs - 1 = 1: epoch 0 at 0, epoch 1 at the peak, never above
assert all(abs(lr - 1e-3 * e) < 1e-12 for e, lr in rates("huge-per-epoch")), rates("huge-per-epoch")
PY

# --- overlap
"$tlm" overlap --corpus corpus.txt --data $W/test.csv --format csv --classes $W/classes.txt --vocab vocab.txt \
  --out overlap.json >/dev/null
$py - <<'PY' || fail "overlap values"
import json
o = json.load(open("overlap.json"))
for k in ("token_type_overlap", "token_occurrence_overlap", "word_type_overlap", "word_occurrence_overlap"):
    assert 0 < o[k] <= 1, k
assert o["word_occurrence_overlap"] >= o["word_type_overlap"]  # frequent words are the covered ones
assert o["token_type_overlap"] > 0.9  # the glosses corpus shares the task's vocabulary
print("overlap", {k: round(v, 3) for k, v in o.items() if k.endswith("overlap")})
PY

# --- exact resume: a run killed with SIGKILL and resumed equals a straight run, bit for bit
res=(--corpus corpus.txt --vocab vocab.txt "${model[@]}" "${common[@]}" --sequences 3000 --epochs 2 --lr 1e-3
     --checkpoint-every 4 --keep-checkpoints 3 --log-every 1)
"$tlm" pretrain "${res[@]}" --out straight >/dev/null 2>&1
"$tlm" pretrain "${res[@]}" --out killed >/dev/null 2>&1 &
pid=$!
complete_checkpoint() {  # the library's rule (src/run/checkpoint.cpp): step-NNNNNNNNN holding trainer_state.json
  find "$1/checkpoints" -maxdepth 2 -regextype posix-extended -regex '.*/step-[0-9]{9}/trainer_state.json' \
    2>/dev/null | grep -q .
}
for _ in $(seq 1 600); do
  if complete_checkpoint killed; then break; fi
  sleep 0.05
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ ! -f killed/model.safetensors ] || fail "the run finished before it could be killed; make it longer"
# a checkpoint cut mid-write (temporary folder) and one without trainer state are ignored
mkdir -p killed/checkpoints/step-999999999.tmp-1 killed/checkpoints/step-999999998
echo junk >killed/checkpoints/step-999999999.tmp-1/model.safetensors
"$tlm" pretrain "${res[@]}" --resume killed >resume.txt 2>&1 || { cat resume.txt; fail "resume failed"; }
grep -q "resuming killed at step" resume.txt || fail "did not resume from a checkpoint"
cmp straight/model.safetensors killed/model.safetensors || fail "resumed weights differ from the straight run"
echo "resume after SIGKILL: identical weights"
expect_error "--resume of a run made with another configuration" \
  "$tlm" pretrain "${res[@]}" --lr 5e-4 --resume killed
expect_error "name different runs" "$tlm" pretrain "${res[@]}" --out straight --resume killed
expect_error "already holds a run; continue it with --resume straight" "$tlm" pretrain "${res[@]}" --out straight

# --- SIGTERM saves a checkpoint and exits 130
"$tlm" pretrain "${res[@]}" --epochs 20 --out termed >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do  # wait until it is training (the handler is installed by then)
  if [ -s termed/log.jsonl ]; then break; fi
  sleep 0.05
done
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
[ $rc -eq 130 ] || fail "SIGTERM exit code $rc, expected 130"
complete_checkpoint termed || fail "no checkpoint after SIGTERM"

# --- bad input, each a clear error
expect_error "no such corpus file" "$tlm" pretrain --corpus nope.txt --vocab vocab.txt --out x1
expect_error "\"xml\" is not one of agnews, dbpedia, fewrel, csv" "$tlm" finetune --train $W/train.csv --format xml --scratch --vocab vocab.txt --out x2
expect_error "exactly one of --init DIR" "$tlm" finetune --train $W/train.csv --format csv --classes $W/classes.txt \
  --vocab vocab.txt --out x3
expect_error "examples left for" "$tlm" finetune "${ft[@]/--cap-per-label/}" --per-label-train 100000 --scratch \
  --vocab vocab.txt --out x4
expect_error "give --valid-per-label N too" "$tlm" finetune "${ft[@]}" --test-every end --scratch --vocab vocab.txt --out x5
[ ! -e x5 ] || fail "a refused --test-every end made its folder"
printf 'x,"a"\ny,"b"\n' >bad.csv
expect_error "unknown label" "$tlm" finetune --train bad.csv --test bad.csv --format csv --classes $W/classes.txt \
  --scratch --vocab vocab.txt --out x5
expect_error "the training set is empty" "$tlm" finetune --train bad.csv --test bad.csv --format csv \
  --classes $W/classes.txt --on-bad-row skip --scratch --vocab vocab.txt --out x6
mkdir -p ro && chmod 500 ro
if [ "$(id -u)" -ne 0 ]; then
  expect_error "ro/" "$tlm" pretrain --corpus corpus.txt --vocab vocab.txt --sequences 100 --out ro/run
fi
expect_error "cannot" "$tlm" pretrain --corpus corpus.txt --vocab vocab.txt --sequences 100 --out /proc/tlm-run
# committee members with different label sets / vocabularies
"$tlm" vocab train --corpus corpus.txt --size 1400 --out vocab2.txt >/dev/null
"$tlm" finetune "${ft[@]}" "${common[@]}" "${model[@]}" --scratch --vocab vocab2.txt --epochs 1 --out ft-v2 >/dev/null 2>&1
expect_error "different vocabularies" "$tlm" eval --model ft-pre --model ft-v2 --data four-test.csv --format csv \
  --classes four.txt
head -n 3 $W/classes.txt >three.txt
$py -c "
import csv
rows = [r for r in csv.reader(open('$W/train.csv')) if r[0] in open('three.txt').read().split()]
csv.writer(open('three.csv', 'w')).writerows(rows)"
"$tlm" finetune --train three.csv --format csv --classes three.txt --per-label-test 5 --per-label-train 10 --cap-per-label \
  "${common[@]}" --init pre --epochs 1 --out ft-three >/dev/null 2>&1
expect_error "different label sets" "$tlm" eval --model ft-pre --model ft-three --data three.csv --format csv \
  --classes three.txt
"$tlm" pretrain "${res[@]}" --epochs 1 --dump-config >dump.json
[ "$(json dump.json "d['epochs']")" = 1 ] || fail "--dump-config"
printf 'lr = 0.0003\nepochs = 2\n' >run.toml
"$tlm" pretrain "${res[@]}" --config run.toml --set epochs=5 --dump-config >dump2.json
[ "$(json dump2.json "(d['lr'], d['epochs'])")" = "(0.001, 5)" ] || fail "precedence: flags over TOML, --set over all"
echo "pipelines: all checks passed"
