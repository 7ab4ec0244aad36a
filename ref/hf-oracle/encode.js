#!/usr/bin/env node
// The Hugging Face tokenizers oracle (the real Rust library, prebuilt in the npm package).
// Builds bert-base-uncased's tokenizer (BertNormalizer, BertPreTokenizer, WordPiece, the
// [CLS] $A [SEP] template) around a vocab.txt, writes it as tokenizer.json, loads that file
// back, and encodes texts: one JSON string per input line -> one JSON line {"ids": [...]}.
//
//   node encode.js --vocab vocab.txt [--cased] [--tokenizer-json out.json] < texts.jsonl > ids.jsonl
//   node encode.js --tokenizer-json existing.json --load < texts.jsonl   (use a saved file as is)
"use strict";
const fs = require("fs");
const readline = require("readline");
const { Tokenizer } = require("tokenizers");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const flag = (name) => process.argv.includes(name);

function bertTokenizerJson(vocabPath, lowercase) {
  const lines = fs.readFileSync(vocabPath, "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const vocab = {};
  lines.forEach((tok, id) => { vocab[tok.trimEnd()] = id; });
  const special = (t) => ({ id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false,
                            normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(special),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null,
                  lowercase },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
               { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: "[SEP]", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } },
             { SpecialToken: { id: "[SEP]", type_id: 1 } }],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [vocab["[CLS]"]], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [vocab["[SEP]"]], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##",
             max_input_chars_per_word: 100, vocab },
  };
}

async function main() {
  const out = arg("--tokenizer-json", null);
  let path = out;
  if (!flag("--load")) {
    const json = bertTokenizerJson(arg("--vocab"), !flag("--cased"));
    path = out || `/tmp/tlm-oracle-${process.pid}.json`;
    fs.writeFileSync(path, JSON.stringify(json));
  }
  const tokenizer = Tokenizer.fromFile(path);
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const lines = [];
  for await (const line of rl) lines.push(line);
  const texts = lines.map((l) => JSON.parse(l));
  for (let i = 0; i < texts.length; i += 256) {
    const batch = await tokenizer.encodeBatch(texts.slice(i, i + 256));
    for (const enc of batch) process.stdout.write(JSON.stringify({ ids: enc.getIds() }) + "\n");
  }
  if (!out && !flag("--load")) fs.unlinkSync(path);
}

main().catch((e) => { console.error(e); process.exit(1); });
