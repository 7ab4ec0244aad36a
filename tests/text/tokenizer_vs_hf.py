#!/usr/bin/env python3
"""tlm's tokenizer against the real Hugging Face tokenizers library (npm package `tokenizers`,
Rust inside) with the bert-base-uncased vocabulary (or --vocab, e.g. one `tlm vocab train` made): the hand-picked hard cases in
tests/text/hard_cases.jsonl plus --per-file real texts drawn (seeded) from every file in
../shared/data. Every id must be equal. Exits 77 (skipped) when the shared data, node or the
npm oracle is absent, 1 on any difference, 0 otherwise.

  /usr/bin/python3 tests/text/tokenizer_vs_hf.py --tlm build/tlm [--data ../shared/data] [--per-file 2000]
"""
import argparse
import csv
import glob
import gzip
import io
import json
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ORACLE = os.path.join(ROOT, "ref", "hf-oracle")


def skip(msg):
    print(f"SKIP: {msg}")
    sys.exit(77)


def texts_from(path):
    """The texts a user would tokenize from each shared file."""
    name = os.path.basename(path)
    if name.endswith(".jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                for para in json.loads(line)["text"].split("\n\n"):
                    if para.strip():
                        yield para
    elif name.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                yield " ".join(row[1:])
    elif name == "val_wiki.json":
        with open(path, encoding="utf-8") as f:
            for insts in json.load(f).values():
                for inst in insts:
                    yield " ".join(inst["tokens"])
    elif name.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for k, v in data.items():
            yield f"{k} {' '.join(v) if isinstance(v, list) else v}"
    elif name.endswith((".txt", ".raw")) or "." not in name:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                yield line.rstrip("\n")


def run(cmd, lines):
    p = subprocess.run(cmd, input="".join(json.dumps(t) + "\n" for t in lines), capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr)
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    return [json.loads(l)["ids"] for l in p.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tlm", required=True)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--per-file", type=int, default=2000)
    ap.add_argument("--vocab", help="a vocab.txt to test instead of bert-base-uncased (e.g. one tlm trained)")
    a = ap.parse_args()
    vocab = a.vocab or os.path.join(a.data, "vocab", "bert-base-uncased.txt")
    if not os.path.exists(os.path.join(a.data, "README.md")):
        skip(f"{a.data} not found (the shared data is not beside this checkout)")
    if not os.path.exists(vocab):
        skip(f"{vocab} not found (the shared data is not beside this checkout)")
    if not shutil.which("node"):
        skip("node is not installed")
    if not os.path.isdir(os.path.join(ORACLE, "node_modules", "tokenizers")):
        skip("the npm oracle is not installed (scripts/install-deps.sh runs npm ci in ref/hf-oracle)")

    cases = [("hard_cases.jsonl", json.loads(l)) for l in open(os.path.join(HERE, "hard_cases.jsonl"), encoding="utf-8")]
    rng = random.Random(2025)
    files = sorted(f for f in glob.glob(os.path.join(a.data, "**", "*"), recursive=True)
                   if os.path.isfile(f) and not f.endswith(("README.md", "MD5SUMS", "LICENSE")))
    for path in files:
        texts = list(texts_from(path) or [])
        if not texts:
            continue
        picked = rng.sample(texts, min(a.per_file, len(texts)))
        cases += [(os.path.relpath(path, a.data), t) for t in picked]
        print(f"{os.path.relpath(path, a.data)}: {len(picked)} texts")

    texts = [t for _, t in cases]
    want = run(["node", os.path.join(ORACLE, "encode.js"), "--vocab", vocab], texts)
    got = run([a.tlm, "tokenize", "--vocab", vocab, "--json-input", "--ids-only"], texts)
    bad = [(src, t, w, g) for (src, t), w, g in zip(cases, want, got) if w != g]
    print(f"{len(cases)} texts, {sum(len(w) for w in want)} ids compared, {len(bad)} differ")
    for src, t, w, g in bad[:10]:
        print(f"--- {src}: {t[:200]!r}\n  hf : {w[:60]}\n  tlm: {g[:60]}")
    return 1 if bad or len(want) != len(got) else 0


if __name__ == "__main__":
    sys.exit(main())
