#!/usr/bin/env bash
# tlm export --format onnx, checked by independent consumers: for a classifier, a committee of 3 and
# a cased model, Hugging Face's transformers.js (pipeline "text-classification", local files only)
# and onnxruntime-node give tlm predict's labels and probabilities within 1e-5 on 200 texts with
# accents, CJK and inputs over the max length; the exported tokenizer.json encodes like tlm's
# tokenizer in the real Hugging Face tokenizers (Rust); a pre-trained run's masked-LM graph equals
# the PyTorch mirror within 1e-5 under onnxruntime-node, and transformers.js's fill-mask pipeline
# ranks its five best tokens as the mirror does; the paper's convolutional BERT-1 (packed and with
# padded batches) exports too; refusals (an --out holding a run, a masked-LM in a committee, a
# missing member) leave every file as it was.
# Usage: test_export.sh path/to/tlm
set -euo pipefail
source "$(dirname "$0")/../shell_helpers.sh"
start_test "$1"
consumers="$root/tests/onnx"
if [ ! -d "$consumers/node_modules/@huggingface/transformers" ] || [ ! -d "$root/ref/hf-oracle/node_modules/tokenizers" ]; then
  echo "SKIP: tests/onnx's or ref/hf-oracle's npm packages are not installed (scripts/install-deps.sh)"
  exit 77
fi

$py "$root/tests/experiment/make_mini_data.py" data >/dev/null
cat data/corpora/near.txt data/corpora/far.txt > corpus.txt
"$tlm" vocab train --corpus corpus.txt --size 300 --out vocab.txt >/dev/null
"$tlm" vocab train --corpus corpus.txt --size 300 --cased --out vocab-cased.txt >/dev/null
ft=(finetune --train data/task/train.csv --test data/task/test.csv --format csv --classes data/task/classes.txt
    --scratch --layers 1 --hidden 32 --heads 2 --max-len 24 --batch 16 --epochs 2 --threads 1)
for s in 1 2 3; do "$tlm" "${ft[@]}" --vocab vocab.txt --seed $s --out m$s >/dev/null 2>&1 || fail "fine-tuning m$s failed"; done
"$tlm" "${ft[@]}" --vocab vocab-cased.txt --cased --layers 2 --seed 4 --out cased >/dev/null 2>&1 ||
  fail "fine-tuning the cased model failed"
# the paper's convolutional BERT-1: packed (an even kernel: torch's "same" puts the odd pixel after)
# and with their padded batches
"$tlm" "${ft[@]}" --vocab vocab.txt --conv-layers 2 --conv-channels 4 --conv-kernel 4,3 --seed 6 --out conv \
  >/dev/null 2>&1 || fail "fine-tuning the convolutional model failed"
"$tlm" "${ft[@]}" --vocab vocab.txt --conv-layers 1 --conv-channels 4 --pad-to 32 --seed 7 --out conv-padded \
  >/dev/null 2>&1 || fail "fine-tuning the padded convolutional model failed"
"$tlm" pretrain --corpus corpus.txt --vocab vocab.txt --layers 1 --hidden 32 --heads 2 --max-len 24 --batch 16 \
  --max-steps 30 --threads 1 --seed 5 --out pre >/dev/null 2>&1 || fail "pre-training failed"

# 200 texts: the task's, with accents, CJK, and ones far over the max length (truncated).
$py - <<'PY'
import csv, json
rows = [r[1] for r in csv.reader(open("data/task/test.csv"))] + [r[1] for r in csv.reader(open("data/task/train.csv"))]
extra = ["Café déjà vu naïve façade", "東京 大学 の 研究", "ünïcödé " * 40, "a " * 500, "Ωμέγα and ALPHA",
         "Ünïcödé CAFÉ Straße " * 12, "中文 文本 " * 30, "the quick brown fox " * 20, "Résumé, naïve; coöperate! " * 9,
         "a\U00020000b \U00020001c", "ΟΔΟΣ ΚΑΙ ΛΟΓΟΣ", "x\U0002B820y \U0002B91Fz"]
texts = (extra + [r.replace("\n", " ") for r in rows])[:200]
assert len(texts) == 200
open("texts.txt", "w").write("".join(t + "\n" for t in texts))
open("texts.jsonl", "w").write("".join(json.dumps(t) + "\n" for t in texts))
# FewRel's format: two relations, the head and tail entities marked by [unused0..3]
rel, rel_texts = {}, []
for i, text in enumerate(rows[:120]):
    words = text.split()[:12]
    if len(words) < 4: continue
    h, t = i % 2, len(words) - 1 - i % 3
    rel.setdefault(f"P{i % 2}", []).append({"tokens": words, "h": ["h", "Q1", [[h]]], "t": ["t", "Q2", [[t]]]})
    w = list(words)
    w[h] = "[unused0]" + w[h] + "[unused1]"  # glued to the words: still matched literally
    w[t] = "[unused2] " + w[t] + " [unused3]"
    rel_texts.append(" ".join(w))
json.dump(rel, open("fewrel.json", "w"))
# CJK beyond U+FFFF and a word-final capital sigma, with pieces for them in this run's vocabulary
rel_texts += ["[unused0] Café [unused1] déjà [unused2] 東京 [unused3]", "[UNUSED0] upper case is not a marker",
              "x\U00020000y \U00020001 z", "ΟΔΟΣ [unused0] ΛΟΓΟΣ [unused1]"]
# masked-LM texts: task rows with a word among the first five masked (never truncated away)
with open("masked.jsonl", "w") as f:
    for i, text in enumerate(rows[:60]):
        words = text.split()
        if len(words) < 3: continue
        words[1 + i % min(len(words) - 2, 4)] = "[MASK]"
        f.write(json.dumps(" ".join(words)) + "\n")
open("rel-texts.txt", "w").write("".join(t + "\n" for t in rel_texts))
open("rel-texts.jsonl", "w").write("".join(json.dumps(t) + "\n" for t in rel_texts))
PY
printf '[unused0]\n[unused1]\n[unused2]\n[unused3]\n\U00020000\n\U00020001\nο\nλ\n##δ\n##ο\n##γ\n##σ\n##ς\n' |
  cat vocab.txt - >vocab-fewrel.txt

# --- classifiers: one model, a committee of 3, a cased two-layer model
"$tlm" export --format onnx --model m1 --out e1 >/dev/null || fail "export of one model failed"
"$tlm" export --format onnx --model m1 --model m2 --model m3 --out e3 >/dev/null || fail "export of a committee failed"
"$tlm" export --format onnx --model cased --out ec >/dev/null || fail "export of the cased model failed"
for f in onnx/model.onnx config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
  [ -s "e3/$f" ] || fail "the export lacks $f"
done
[ "$(json e3/config.json 'd["tlm_export"]["committee"]')" = True ] || fail "config.json does not say it is a committee"

check_classifier() {  # check_classifier EXPORT_DIR TEXTS MODEL...: consumers vs tlm predict on TEXTS(.txt, .jsonl)
  local dir=$1 texts=$2
  shift 2
  local models=()
  for m in "$@"; do models+=(--model "$m"); done
  "$tlm" predict "${models[@]}" --probs --input $texts.txt >"$dir.predict.jsonl"
  # the tokenizer.json, read by the real Hugging Face tokenizers, encodes as the run's tokenizer
  node "$root/ref/hf-oracle/encode.js" --tokenizer-json "$dir/tokenizer.json" --load <$texts.jsonl >"$dir.hf-ids.jsonl" ||
    fail "$dir: Hugging Face tokenizers could not load tokenizer.json"
  "$tlm" tokenize --model "$1" --json-input --ids-only <$texts.jsonl >"$dir.ids.jsonl"
  cmp -s "$dir.hf-ids.jsonl" "$dir.ids.jsonl" || fail "$dir: tokenizer.json encodes differently from tlm's tokenizer"
  # ... and in transformers.js's JavaScript port, but for the [SEP] it cuts off rows over the max length
  node "$consumers/consume.js" tokenize "$dir" <$texts.jsonl >"$dir.js-ids.jsonl" 2>"$dir.js-ids.err" ||
    { cat "$dir.js-ids.err"; fail "$dir: transformers.js's tokenizer failed"; }
  $py - "$dir" <<'PY' || fail "$dir: transformers.js tokenizes differently from tlm"
import json, sys
d = sys.argv[1]
tlm = [json.loads(l)["ids"] for l in open(d + ".ids.jsonl")]
js = [json.loads(l)["ids"] for l in open(d + ".js-ids.jsonl")]
assert len(tlm) == len(js)
for i, (t, j) in enumerate(zip(tlm, js)):
    assert len(t) == len(j) and t[:-1] == j[:-1], (i, t, j)
    assert t[-1] == j[-1] or len(t) == 24, (i, t, j)  # only a row cut at the max length lacks [SEP]
PY
  node "$consumers/consume.js" pipeline "$dir" <$texts.jsonl >"$dir.pipeline.jsonl" 2>"$dir.pipeline.err" ||
    { cat "$dir.pipeline.err"; fail "$dir: transformers.js failed"; }
  node "$consumers/consume.js" ort "$dir" <"$dir.ids.jsonl" >"$dir.ort.jsonl" 2>"$dir.ort.err" ||
    { cat "$dir.ort.err"; fail "$dir: onnxruntime-node failed"; }
  $py - "$dir" <<'PY' || fail "$dir: a consumer differs from tlm predict"
import json, sys
d = sys.argv[1]
want = [json.loads(l) for l in open(d + ".predict.jsonl")]
pipe = [json.loads(l) for l in open(d + ".pipeline.jsonl")]
ort = [json.loads(l) for l in open(d + ".ort.jsonl")]
labels = list(want[0]["probs"])
assert len(want) == len(pipe) == len(ort) >= 100, (len(want), len(pipe), len(ort))
worst_pipe = worst_ort = 0
for w, p, o in zip(want, pipe, ort):
    assert p["label"] == w["label"], (p["label"], w["label"])
    assert sorted(p["probs"]) == sorted(labels)
    worst_pipe = max(worst_pipe, max(abs(p["probs"][c] - w["probs"][c]) for c in labels))
    assert max(range(len(labels)), key=lambda i: o["probs"][i]) == labels.index(w["label"])
    worst_ort = max(worst_ort, max(abs(o["probs"][i] - w["probs"][c]) for i, c in enumerate(labels)))
print(f"{d}: transformers.js within {worst_pipe:.1e}, onnxruntime-node within {worst_ort:.1e} of tlm predict")
assert worst_pipe <= 1e-5 and worst_ort <= 1e-5  # the issue asks 1e-4; fp32 both sides holds 1e-5
PY
}
check_classifier e1 texts m1
# transformers.js truncates after adding [CLS] and [SEP], cutting the [SEP] off; the graph puts it
# back, so such rows give exactly what tlm's own truncation gives
"$tlm" tokenize --vocab e1/vocab.txt --json-input --ids-only <texts.jsonl | $py -c '
import json, sys
tlm = [json.loads(l)["ids"] for l in open("e1.ids.jsonl")]
full = [json.loads(l)["ids"] for l in sys.stdin]
long = [i for i, r in enumerate(full) if len(r) > 24]
assert len(long) >= 5, len(long)
with open("long-tlm.jsonl", "w") as a, open("long-cut.jsonl", "w") as b:
    for i in long:
        assert tlm[i][-1] == full[i][-1] and full[i][23] != full[i][-1]
        a.write(json.dumps({"ids": tlm[i]}) + "\n")
        b.write(json.dumps({"ids": full[i][:24]}) + "\n")'
node "$consumers/consume.js" ort e1 <long-tlm.jsonl >long-tlm.out
node "$consumers/consume.js" ort e1 <long-cut.jsonl >long-cut.out
cmp -s long-tlm.out long-cut.out || fail "rows cut as transformers.js cuts them do not read as tlm's truncation"
# ... and only rows cut at the max length: a shorter row without [SEP] is read as it is
head -1 long-tlm.jsonl | $py -c '
import json, sys
ids = json.loads(sys.stdin.readline())["ids"]
print(json.dumps({"ids": ids[:6]}))
print(json.dumps({"ids": ids[:5] + [ids[-1]]}))' >short.jsonl
node "$consumers/consume.js" ort e1 <short.jsonl >short.out
[ "$(sed -n 1p short.out)" != "$(sed -n 2p short.out)" ] || fail "a short row without [SEP] was changed"
check_classifier e3 texts m1 m2 m3
check_classifier ec texts cased
"$tlm" export --format onnx --model conv --out econv >/dev/null || fail "export of the convolutional model failed"
"$tlm" export --format onnx --model conv-padded --out epad >/dev/null || fail "export of the padded convolutional model failed"
check_classifier econv texts conv
check_classifier epad texts conv-padded
# added tokens (FewRel's entity markers, matched literally): in tokenizer.json as tlm reads them
"$tlm" "${ft[@]}" --train fewrel.json --test fewrel.json --format fewrel --vocab vocab-fewrel.txt --seed 8 --out rel \
  >/dev/null 2>&1 || fail "fine-tuning on FewRel-format data failed"
"$tlm" export --format onnx --model rel --out erel >/dev/null || fail "export of the FewRel model failed"
check_classifier erel rel-texts rel
grep -q '"lowercase":false' ec/tokenizer.json || fail "the cased export's normalizer lowercases"

# --- a pre-trained run: the masked-LM head against the PyTorch mirror, and fill-mask
"$tlm" export --format onnx --model pre --out ep >/dev/null || fail "export of a pre-trained run failed"
[ "$(json ep/config.json 'd["architectures"][0]')" = BertForMaskedLM ] || fail "the masked-LM export's architecture"
"$tlm" tokenize --vocab ep/vocab.txt --max-len 24 --json-input --ids-only <masked.jsonl >masked-ids.jsonl
node "$consumers/consume.js" ort ep <masked-ids.jsonl >ep.ort.jsonl 2>ep.ort.err || { cat ep.ort.err; fail "onnxruntime-node failed on the masked-LM"; }
node "$consumers/consume.js" fill-mask ep <masked.jsonl >ep.fill.jsonl 2>ep.fill.err || { cat ep.fill.err; fail "transformers.js fill-mask failed"; }
$py - "$root/ref" <<'PY' || fail "the masked-LM export differs from the PyTorch mirror"
import json, sys
import torch
sys.path.insert(0, sys.argv[1])
import bert_mirror, st
config = json.load(open("pre/config.json"))
model = bert_mirror.build(config)
weights, _ = st.load("pre/model.safetensors")
model.load_state_dict(weights, strict=False)  # the decoder weight is tied, not stored
model.eval()
vocab = open("ep/vocab.txt").read().split("\n")
mask_id = vocab.index("[MASK]")
ids = [json.loads(l)["ids"] for l in open("masked-ids.jsonl")]
ort = [json.loads(l)["probs"] for l in open("ep.ort.jsonl")]
fill = [json.loads(l)["top"] for l in open("ep.fill.jsonl")]
assert len(ids) == len(ort) == len(fill) and len(ids) >= 40, (len(ids), len(ort), len(fill))
worst, positions, fill_worst = 0, 0, 0
for row, o, f in zip(ids, ort, fill):
    with torch.no_grad():
        t = torch.tensor([row])
        logits, _ = model(t, torch.ones_like(t), torch.zeros_like(t))
    at = [i for i, x in enumerate(row) if x == mask_id]
    assert len(o) == len(at) == 1, (len(o), len(at))
    p = torch.softmax(logits[0, at[0]].double(), -1)
    worst = max(worst, (p - torch.tensor(o[0], dtype=torch.float64)).abs().max().item())
    positions += 1
    # fill-mask's five: the mirror's probabilities of those tokens, and none better left out
    assert len(f) == 5
    for token, score in f:
        fill_worst = max(fill_worst, abs(p[token].item() - score))
    assert p.max().item() <= f[0][1] + 1e-4 and sorted(p.tolist())[-5] <= f[-1][1] + 1e-4
print(f"masked-LM: onnxruntime-node within {worst:.1e} of the mirror at {positions} [MASK] positions; "
      f"transformers.js fill-mask's top 5 within {fill_worst:.1e}")
assert positions >= 40 and worst <= 1e-5 and fill_worst <= 1e-5
PY

# --- replacing an earlier export (named with a trailing slash); refusals leave every file as it was
"$tlm" export --format onnx --model m2 --out e1/ >/dev/null || fail "an earlier export was not replaced"
grep -q "/m2\"" e1/config.json || fail "the replaced export does not name its new model"
compgen -G "e1.partial-*" >/dev/null || compgen -G "e1.old-*" >/dev/null && fail "the export left a staging folder behind"
# what an interrupted export left is cleaned up by the next: its staging folder removed, an earlier
# export set aside by a cut swap put back (then replaced); folders of the user's are never touched
mkdir -p .e1.tlm-staging/onnx e1.old-2024 && touch e1.old-2024/notes.txt
mv e1 .e1.tlm-old
"$tlm" export --format onnx --model m1 --out e1 >/dev/null || fail "export over an interrupted one failed"
[ ! -e .e1.tlm-staging ] && [ ! -e .e1.tlm-old ] || fail "an interrupted export's folders were left in place"
grep -q "/m1\"" e1/config.json || fail "the export after an interrupted one does not name its model"
[ -f e1.old-2024/notes.txt ] || fail "a folder of the user's was removed"
ln -s e1 e1-link
mkdir holder && cp -r m1 holder/run && cp -r e3/. holder/
snapshot() {  # every file here but expect_error's o.txt and e.txt and the snapshots
  find . \( -path ./o.txt -o -path ./e.txt -o -path ./snapshots \) -prune -o -type f -print0 | sort -z | xargs -0 md5sum
}
mkdir snapshots
snapshot >snapshots/before.txt
expect_error "missing/config.json" "$tlm" export --format onnx --model m1 --model missing --out e3
expect_error "holds the run m1" "$tlm" export --format onnx --model m1 --out .
expect_error "holds the run holder/run" "$tlm" export --format onnx --model holder/run --out holder
expect_error "lies inside the run m1" "$tlm" export --format onnx --model m1 --out m1/export
expect_error "lies inside the run" "$tlm" export --format onnx --model m1 --out m2/export
expect_error "which an export does not write" "$tlm" export --format onnx --model m2 --out data
expect_error "export a pre-trained (masked-LM) run on its own" "$tlm" export --format onnx --model m1 --model pre --out e3
expect_error "onnx" "$tlm" export --format torchscript --model m1 --out e3
expect_error "data/config.json" "$tlm" export --format onnx --model data --out e3
expect_error "exists and is not a folder" "$tlm" export --format onnx --model m1 --out texts.txt
expect_error "a symbolic link" "$tlm" export --format onnx --model m1 --out e1-link
snapshot >snapshots/after.txt
cmp -s snapshots/before.txt snapshots/after.txt || { diff snapshots/*.txt | head; fail "a refused export changed files"; }
[ ! -e m1/export ] && [ ! -e m2/export ] || fail "a refused export created a folder"
echo "export: all checks passed"
