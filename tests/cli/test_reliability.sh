#!/usr/bin/env bash
# No silent damage, through the real binary on synthetic data (seconds): refused commands touch
# nothing, folders are locked, identities (vocabulary, tokenizer, architecture) are checked, non-finite
# values are caught, finished runs stay finished, a kill between a checkpoint's last write and its
# rename never sticks, bad configurations and damaged files are clear errors, and a cased model is
# read as cased by every command.
# Usage: test_reliability.sh path/to/tlm
set -euo pipefail
source "$(dirname "$0")/../shell_helpers.sh"
start_test "$1"
# Every file of a folder with its hash, except the lock file (which records its last holder).
snapshot() { (cd "$1" && find . -type f ! -name tlm.lock -print0 | sort -z | xargs -0 sha256sum); }
same_files() {  # same_files DIR SNAPSHOT-FILE what
  snapshot "$1" >now.txt
  cmp -s "$2" now.txt || { diff "$2" now.txt | head -20 >&2; fail "$3 changed files of $1"; }
}

$py "$root/tests/experiment/make_mini_data.py" data
"$tlm" vocab train --corpus data/corpora/near.txt --size 300 --out vocab.txt >/dev/null
# A vocabulary of the same size with two tokens swapped: same size, other identity.
$py - <<'PY'
lines = open("vocab.txt").read().split("\n")
lines[110], lines[111] = lines[111], lines[110]
open("vocab2.txt", "w").write("\n".join(lines))
PY
P=(--corpus data/corpora/near.txt --layers 1 --hidden 16 --heads 2 --max-len 16 --seq-mode chunk --batch 16
   --threads 1 --sequences 400 --valid-sequences 50 --lr 3e-3)
T=(--train data/task/train.csv --test data/task/test.csv --format csv --classes data/task/classes.txt
   --per-label-train 20 --per-label-test 10 --max-len 16 --batch 8 --epochs 3 --lr 3e-3 --threads 1)

# --- a refused command leaves every file of the run as it was
"$tlm" pretrain "${P[@]}" --vocab vocab.txt --out r >/dev/null 2>&1
snapshot r >r.snap
expect_error "r already holds a run" "$tlm" pretrain "${P[@]}" --vocab vocab2.txt --out r
same_files r r.snap "a refused pretrain into an existing run"
expect_error "another configuration" "$tlm" pretrain "${P[@]}" --vocab vocab2.txt --resume r
same_files r r.snap "a refused --resume with another vocabulary"
expect_error "lr: 0.003 in the run, 0.5 now" "$tlm" pretrain "${P[@]}" --vocab vocab.txt --lr 0.5 --resume r
same_files r r.snap "a refused --resume with another learning rate"
expect_error "r already holds a run" "$tlm" finetune "${T[@]}" --scratch --vocab vocab.txt --out r
same_files r r.snap "a refused finetune into a pre-training run"
"$tlm" pretrain "${P[@]}" --vocab vocab.txt --resume r >o.txt 2>e.txt || fail "resuming a finished run failed"
grep -q "has finished; nothing to do" e.txt || fail "resuming a finished run did something"
same_files r r.snap "resuming a finished run"
mkdir notarun && echo keep >notarun/mine.txt
expect_error "there is no run to continue there" "$tlm" pretrain "${P[@]}" --vocab vocab.txt --resume notarun
[ "$(ls notarun)" = mine.txt ] || fail "--resume of a folder that is not a run wrote into it: $(ls notarun)"
echo "refused commands: nothing touched"

# --- locks: a second process on a run or experiment folder is refused, naming the holder
"$tlm" pretrain "${P[@]}" --vocab vocab.txt --epochs 300 --out busy >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 600); do [ -s busy/log.jsonl ] && break; sleep 0.05; done
expect_error "in use by another tlm process (host $(hostname), pid $holder)" \
  "$tlm" pretrain "${P[@]}" --vocab vocab.txt --seed 2 --out busy
expect_error "in use by another tlm process" "$tlm" pretrain "${P[@]}" --vocab vocab.txt --epochs 300 --resume busy
kill -9 $holder
wait $holder 2>/dev/null || true
# The dead holder's lock does not block: the run continues (or starts again) under a new process.
"$tlm" pretrain "${P[@]}" --vocab vocab.txt --epochs 300 --auto-resume --out busy >/dev/null 2>e.txt ||
  { cat e.txt; fail "a lock left by a killed process blocked the run"; }
"$tlm" reproduce --preset "$root/tests/experiment/mini_plan.toml" --data-dir data --jobs 1 --threads 1 --out exp \
  >/dev/null 2>&1 &
runner=$!
for _ in $(seq 1 600); do [ -s exp/plan.json ] && break; sleep 0.05; done
expect_error "the experiment folder is in use by another tlm process" \
  "$tlm" reproduce --preset "$root/tests/experiment/mini_plan.toml" --data-dir data --jobs 1 --threads 1 --out exp
kill -TERM $runner
wait $runner 2>/dev/null || true
echo "locks: ok"

# --- identity, not size: vocabularies and architectures are compared with the runs'
"$tlm" finetune "${T[@]}" --init r --out ft >/dev/null 2>&1
expect_error "is not the vocabulary of the --init run r" "$tlm" finetune "${T[@]}" --init r --vocab vocab2.txt --out x
expect_error "--layers 3 differs from the --init run r (1)" "$tlm" finetune "${T[@]}" --init r --layers 3 --out x
expect_error "--hidden 64 differs from the --init run r (16)" "$tlm" finetune "${T[@]}" --init r --hidden 64 --out x
"$tlm" finetune "${T[@]}" --init r --layers 1 --hidden 16 --epochs 1 --out same-arch >/dev/null 2>&1 ||
  fail "architecture flags equal to the --init run's were refused"
cp r/vocab.txt r.vocab
cp vocab2.txt r/vocab.txt
expect_error "is not the vocabulary the run was trained with" "$tlm" finetune "${T[@]}" --init r --out x
cp r.vocab r/vocab.txt
cp ft/vocab.txt ft.vocab
cp vocab2.txt ft/vocab.txt
head -n 3 data/task/test.csv | cut -d, -f2 >texts.txt
expect_error "is not the vocabulary the run was trained with" "$tlm" predict --model ft --input texts.txt
expect_error "is not the vocabulary the run was trained with" "$tlm" eval --model ft --data data/task/test.csv \
  --format csv --classes data/task/classes.txt
cp ft.vocab ft/vocab.txt
[ ! -e x ] || fail "a refused fine-tune left a run folder behind: $(ls x)"
echo "identity checks: ok"

# --- a task without a test file: every training seed is scored on one test sample, fixed by the
# test seed (compared item by item through the runs' per-item prediction files)
O=(--train data/task/train.csv --format csv --classes data/task/classes.txt --per-label-train 10 --per-label-test 5
   --test-seed 9 --max-len 16 --batch 8 --epochs 1 --threads 1 --scratch --vocab vocab.txt --layers 1 --hidden 16 --heads 2)
"$tlm" finetune "${O[@]}" --seed 1 --out one1 >/dev/null 2>&1
"$tlm" finetune "${O[@]}" --seed 2 --out one2 >/dev/null 2>&1
"$tlm" finetune "${O[@]}" --seed 1 --test-seed 10 --out one3 >/dev/null 2>&1
$py - <<PY || fail "the test sample of a task without a test file moved with the training seed"
import sys
sys.path.insert(0, "$root/ref")
import st
items = [st.load(d + "/test_predictions.safetensors")[0]["items"].tolist() for d in ("one1", "one2", "one3")]
assert len(items[0]) == 20 and items[0] == items[1], "two training seeds, two test samples"
assert items[0] != items[2], "another test seed, the same test sample"
PY

# --- bad values and bad files are clear errors, never a crash or a silent success
expect_error "leaves nothing to pre-train on" "$tlm" pretrain "${P[@]}" --vocab vocab.txt --valid-sequences 5000 --out v
[ ! -e v ] || fail "a refused pretrain left its new folder behind: $(ls -A v)"
expect_error "--max-len 600 exceeds the 512 positions of the --init run r" \
  "$tlm" finetune "${T[@]}" --init r --max-len 600 --out ml
[ ! -e ml ] || fail "a refused fine-tune left its new folder behind"
printf 'animals\nfood\nanimals\nweather\n' >dup.txt
expect_error "dup.txt:3: class \"animals\" is listed twice (first on line 1)" \
  "$tlm" finetune "${T[@]/data\/task\/classes.txt/dup.txt}" --scratch --vocab vocab.txt --out d
for bad in "--lr nan:is not a finite number" "--lr inf:is not a finite number" "--lr -1:out of range" \
  "--mask-prob 1.5:out of range (must be > 0 and < 1)" "--warmup -1:out of range" "--clip -1:out of range" \
  "--ffn -1:out of range" "--threads -1:out of range" "--max-steps -1:out of range" \
  "--checkpoint-every -1:out of range" "--weight-decay -1:out of range" "--batch 100000000:out of range" \
  "--layers 1.5:is not an integer" "--seq-mode lines:is not one of first, chunk"; do
  flag=${bad%%:*}
  expect_error "${bad#*:}" "$tlm" pretrain "${P[@]}" --vocab vocab.txt $flag --out b
done
expect_error "per_label_train (--per-label-train): -1 is out of range" \
  "$tlm" finetune "${T[@]}" --scratch --vocab vocab.txt --per-label-train -1 --out b
expect_error "limit_alphabet (--limit-alphabet): -1 is out of range" \
  "$tlm" vocab train --corpus data/corpora/near.txt --limit-alphabet -1 --out v.txt
printf 'layers = "one"\n' >one.toml
expect_error 'one.toml: layers (--layers): expected an integer, got "one"' \
  "$tlm" pretrain "${P[@]}" --vocab vocab.txt --config one.toml --out b
printf 'layers = 1.5\n' >half.toml
expect_error "half.toml: layers (--layers): expected an integer, got 1.5" \
  "$tlm" pretrain "${P[@]}" --vocab vocab.txt --config half.toml --out b
printf 'epochz = 2\n' >typo.toml
expect_error 'typo.toml: unknown key "epochz" for tlm pretrain (did you mean "epochs"?)' \
  "$tlm" pretrain "${P[@]}" --vocab vocab.txt --config typo.toml --out b
[ ! -e b ] || fail "a refused pretrain made its run folder"
: >empty.txt
expect_error "the corpus has no words" "$tlm" vocab train --corpus empty.txt --out e.vocab
expect_error "the corpus has no words" "$tlm" overlap --corpus empty.txt --data data/task/test.csv --format csv \
  --classes data/task/classes.txt --vocab vocab.txt
echo '{"version": 2, "step"' >truncated.json
mkdir -p rep && cp truncated.json rep/results.json
expect_error "rep/results.json: not valid JSON" "$tlm" report rep
echo '{}' >rep/results.json
expect_error "rep: not a results file tlm wrote" "$tlm" report rep
echo "bad values and files: ok"

# --- non-finite values: training stops with the last finite state kept; NaN weights are refused
expect_error "training diverged at step" "$tlm" pretrain "${P[@]}" --vocab vocab.txt --lr 1e30 --clip 0 --out nan
[ "$(json nan/manifest.json "d['status'].startswith('failed: training diverged')")" = True ] || fail "manifest status"
[ -n "$(ls nan/checkpoints)" ] || fail "no checkpoint of the last finite state"
$py - <<PY
import sys
sys.path.insert(0, "$root/ref")
import st, torch
t, meta = st.load("ft/model.safetensors")
t["classifier.bias"][0] = float("nan")
st.save("nanft.safetensors", t, meta)
PY
mkdir nanft && cp ft/config.json ft/vocab.txt ft/tokenizer_config.json ft/manifest.json nanft/
mv nanft.safetensors nanft/model.safetensors
expect_error 'tensor "classifier.bias" holds a non-finite value' "$tlm" predict --model nanft --input texts.txt
$py - <<PY
import sys
sys.path.insert(0, "$root/ref")
import st
t, meta = st.load("r/model.safetensors")
t["bert.embeddings.word_embeddings.weight"][5, 0] = float("inf")
st.save("naninit.safetensors", t, meta)
PY
mkdir naninit && cp r/config.json r/vocab.txt r/tokenizer_config.json r/manifest.json naninit/
mv naninit.safetensors naninit/model.safetensors
expect_error 'holds a non-finite value' "$tlm" finetune "${T[@]}" --init naninit --out fromnan
[ ! -e fromnan ] || fail "a fine-tune from a non-finite model started"
"$tlm" predict --model nanft --input texts.txt --allow-nonfinite >/dev/null || fail "--allow-nonfinite"
echo "non-finite values: ok"

# --- a finished fine-tune resumed is a no-op; one killed between its final checkpoint and
# "finished" ends with each epoch evaluated once
snapshot ft >ft.snap
"$tlm" finetune "${T[@]}" --init r --resume ft >/dev/null 2>&1 || fail "resuming a finished fine-tune failed"
same_files ft ft.snap "resuming a finished fine-tune"
rm ft/metrics.json ft/model.safetensors
$py -c "
import json; m = json.load(open('ft/manifest.json')); m['status'] = 'running'
json.dump(m, open('ft/manifest.json', 'w'))"
"$tlm" finetune "${T[@]}" --init r --resume ft >/dev/null 2>&1 || fail "resuming at the final checkpoint failed"
[ "$(json ft/metrics.json "len(d['history'])")" = 3 ] || fail "the history repeats an epoch: $(json ft/metrics.json "[h['epoch'] for h in d['history']]")"
[ "$(grep -c test_accuracy ft/log.jsonl)" = 3 ] || fail "log.jsonl repeats an epoch"
# The same for a run that ends mid-epoch (--max-steps): its final evaluation is logged once.
"$tlm" pretrain "${P[@]}" --vocab vocab.txt --epochs 3 --max-steps 30 --out mid >/dev/null 2>&1
rm mid/metrics.json mid/model.safetensors
$py -c "
import json; m = json.load(open('mid/manifest.json')); m['status'] = 'running'
json.dump(m, open('mid/manifest.json', 'w'))"
"$tlm" pretrain "${P[@]}" --vocab vocab.txt --epochs 3 --max-steps 30 --resume mid >/dev/null 2>&1 || fail "resume at max-steps"
[ "$(grep -c valid_mlm_loss mid/log.jsonl)" = 2 ] || fail "the final evaluation is logged twice: $(grep -c valid_mlm_loss mid/log.jsonl)"
echo "finished runs: ok"

# --- killed between a checkpoint's last write and its rename: the partial folder is never taken
# for a checkpoint; the run resumes from the previous one and ends bit-identical to a straight run
R=("${P[@]}" --vocab vocab.txt --checkpoint-every 4 --epochs 2 --log-every 1)
"$tlm" pretrain "${R[@]}" --out straight >/dev/null 2>&1
set +e
TLM_FAULT_INJECT=kill-before-checkpoint-rename:8 "$tlm" pretrain "${R[@]}" --out window >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "the fault injection did not kill the trainer (exit $rc)"
ls -d window/checkpoints/step-000000008.tmp-* >/dev/null || fail "no partial checkpoint was left"
[ -f window/checkpoints/step-000000008.tmp-*/trainer_state.json ] || fail "the partial folder lacks its trainer state"
"$tlm" pretrain "${R[@]}" --resume window >o.txt 2>e.txt || { cat e.txt; fail "resume after the kill failed"; }
grep -q "removed 1 partial checkpoint" e.txt || fail "the partial checkpoint was not removed"
grep -q "resuming window at step 4" e.txt || fail "did not resume from the previous checkpoint"
cmp straight/model.safetensors window/model.safetensors || fail "resumed weights differ from the straight run"
# The console after a resume: the loss shown is this session's, not a decayed average from zero.
first=$(grep -m1 "step 5/" e.txt | sed -E 's/.* loss ([0-9.]+) .*/\1/')
logged=$($py -c "
import json
rows = [json.loads(l) for l in open('window/log.jsonl')]
print('%.4f' % [r['loss'] for r in rows if r.get('step') == 5 and 'loss' in r][0])")
[ "$first" = "$logged" ] || fail "console loss after resume $first, log $logged"
# A run continues on the data it began with: a changed corpus, or a damaged trainer state, is
# refused before anything of the run is touched.
cp data/corpora/near.txt moving.txt
M=("${R[@]/data\/corpora\/near.txt/moving.txt}")
set +e
TLM_FAULT_INJECT=kill-before-checkpoint-rename:8 "$tlm" pretrain "${M[@]}" --out moved >/dev/null 2>&1
set -e
echo "the cat and the dog" >>moving.txt
snapshot moved >moved.snap
expect_error "moving.txt has changed since the run started" "$tlm" pretrain "${M[@]}" --resume moved
same_files moved moved.snap "a refused resume on changed data"
cp data/corpora/near.txt moving.txt
sed -i 's/"step": 4,/"step": "four",/' moved/checkpoints/step-000000004/trainer_state.json
snapshot moved >moved.snap
expect_error "step-000000004/trainer_state.json: a field has the wrong type" "$tlm" pretrain "${M[@]}" --resume moved
same_files moved moved.snap "a refused resume from a damaged trainer state"
# The same kill at the first checkpoint: nothing to resume from, the run starts again.
set +e
TLM_FAULT_INJECT=kill-before-checkpoint-rename:4 "$tlm" pretrain "${R[@]}" --out window1 >/dev/null 2>&1
set -e
"$tlm" pretrain "${R[@]}" --auto-resume --out window1 >/dev/null 2>e.txt || { cat e.txt; fail "restart failed"; }
cmp straight/model.safetensors window1/model.safetensors || fail "restarted weights differ from the straight run"
echo "checkpoint window: ok"

# --- a damaged token shard is rebuilt, never used
shard=$(ls straight/cache/*.tlmshard | head -1)
$py -c "
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) - 40] ^= 0xFF; open(p, 'wb').write(b)" "$shard"
"$tlm" pretrain "${R[@]}" --cache-dir straight/cache --out again >/dev/null 2>e.txt
grep -q "checksum mismatch" e.txt || fail "a damaged shard was not noticed"
cmp straight/model.safetensors again/model.safetensors || fail "the rebuilt shard gave another model"
echo "shard checksum: ok"

# --- a cased model is read as cased by predict, eval, bench latency and overlap
$py - <<'PY'
import random
r = random.Random(3)
fruit = "Apple Banana Cherry Grape".split()
tech = "apple banana cherry grape".split()  # the same words lowercased mean something else
with open("cased.txt", "w") as f:
    for _ in range(600):
        f.write(" ".join(r.choice(fruit + tech) for _ in range(12)) + "\n")
with open("cased-classes.txt", "w") as f:
    f.write("fruit\ntech\n")
for name, n in (("cased-train.csv", 60), ("cased-test.csv", 20)):
    with open(name, "w") as f:
        for _ in range(n):
            f.write("fruit,%s\n" % " ".join(r.choice(fruit) for _ in range(6)))
            f.write("tech,%s\n" % " ".join(r.choice(tech) for _ in range(6)))
with open("upper.csv", "w") as f:
    f.write("fruit,Apple Banana Cherry\ntech,Grape Apple Banana\n")
with open("lower.csv", "w") as f:
    f.write("fruit,apple banana cherry\ntech,grape apple banana\n")
PY
"$tlm" vocab train --corpus cased.txt --cased --size 200 --out cased-vocab.txt >/dev/null
"$tlm" pretrain --corpus cased.txt --vocab cased-vocab.txt --cased --layers 1 --hidden 16 --heads 2 --max-len 16 \
  --seq-mode chunk --batch 16 --threads 1 --epochs 1 --out cpre >/dev/null 2>&1
C=(--train cased-train.csv --test cased-test.csv --format csv --classes cased-classes.txt --max-len 16 --batch 8
   --epochs 4 --lr 5e-3 --threads 1)
"$tlm" finetune "${C[@]}" --init cpre --out cft >/dev/null 2>&1  # case handling from the --init run
[ "$(json cft/tokenizer_config.json "d['do_lower_case']")" = False ] || fail "the fine-tune did not inherit --cased"
expect_error "the --init run cpre is cased" "$tlm" finetune "${C[@]}" --init cpre --set cased=false --out x
printf 'Apple Banana\napple banana\n' >ab.txt
"$tlm" predict --model cft --probs --input ab.txt >ab.jsonl
$py - <<'PY' || fail "predict read Apple and apple alike"
import json
a, b = [json.loads(l)["probs"] for l in open("ab.jsonl")]
assert any(abs(a[k] - b[k]) > 1e-4 for k in a), (a, b)
PY
e() { "$tlm" eval --model cft --data "$1" --format csv --classes cased-classes.txt | $py -c "import json,sys; print(json.load(sys.stdin)['committee']['loss'])"; }
[ "$(e upper.csv)" != "$(e lower.csv)" ] || fail "eval read Apple and apple alike"
for cmd in "predict --input ab.txt" "eval --data upper.csv --format csv --classes cased-classes.txt" \
  "bench latency --data upper.csv --format csv --classes cased-classes.txt --texts 2"; do
  expect_error "cft was trained on sequences of 16 tokens, but --max-len 64 was given" \
    "$tlm" $cmd --model cft --max-len 64
done
"$tlm" bench latency --model cft --data upper.csv --format csv --classes cased-classes.txt --texts 2 --json lat.json \
  >/dev/null
[ "$(json lat.json "d['max_len']")" = 16 ] || fail "bench latency did not use the run's sequence length"
printf 'Apple Banana Cherry Grape\n' >upper-corpus.txt
ov() { "$tlm" overlap --corpus upper-corpus.txt --data lower.csv --format csv --classes cased-classes.txt "$@" |
  $py -c "import json,sys; print(json.load(sys.stdin)['word_type_overlap'])"; }
[ "$(ov --model cft)" = 0.0 ] || fail "overlap with a cased run matched Apple with apple"
[ "$(ov --vocab cased-vocab.txt)" = 1.0 ] || fail "uncased overlap should match them"
echo "cased round trip: ok"
echo "PASS"
