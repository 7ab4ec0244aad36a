#!/usr/bin/env bash
# A vocabulary trained by `tlm vocab train` loads in Hugging Face's tokenizers and gives the
# same ids as tlm, on the hard cases and real text from every shared file. Skips (77) where
# ../shared/data is absent.
set -euo pipefail
tlm="$1"
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/../../../shared/data"
[ -f "$data/README.md" ] || { echo "SKIP: ../shared/data not found"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tlm" vocab train --corpus "$data/wikitext-2/wiki.valid.raw" --corpus "$data/wikitext-2/wiki.test.raw" \
  --size 4000 --out "$work/vocab.txt"
[ "$(wc -l <"$work/vocab.txt")" -eq 4000 ] || { echo "FAIL: expected 4000 tokens"; exit 1; }
exec /usr/bin/python3 "$here/tokenizer_vs_hf.py" --tlm "$tlm" --vocab "$work/vocab.txt" --per-file 400
