#!/usr/bin/env node
// Independent consumers of a `tlm export --format onnx` folder.
//
//   node consume.js pipeline DIR < texts.jsonl > probs.jsonl
//     Hugging Face transformers.js, local files only: pipeline("text-classification", DIR), every
//     label's probability -> {"label": ..., "probs": {label: p}} per text (one JSON string per line).
//   node consume.js fill-mask DIR < texts.jsonl > top.jsonl
//     transformers.js's fill-mask pipeline -> {"top": [[token id, score], ...]} (5 best) per text with one [MASK].
//   node consume.js tokenize DIR < texts.jsonl > ids.jsonl
//     transformers.js's tokenizer of DIR, truncating as its pipelines do -> {"ids": [...]} per text.
//   node consume.js ort DIR < ids.jsonl > out.jsonl
//     onnxruntime-node on the token ids given ({"ids": [...]} per line), in right-padded batches of
//     up to 16 with an attention mask: a classifier's {"probs": [...]} (softmax of the logits), or a
//     masked-LM's {"probs": [[...], ...]} over the vocabulary at each [MASK] position.
"use strict";
const fs = require("fs");
const path = require("path");

async function readLines() {
  const text = fs.readFileSync(0, "utf8");
  return text.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

function softmax(row) {
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

async function transformersPipeline(task, dir) {
  const { pipeline, env } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(path.resolve(dir)) + "/";
  return pipeline(task, path.basename(path.resolve(dir)), { dtype: "fp32", device: "cpu" });
}

async function classify(dir) {
  const clf = await transformersPipeline("text-classification", dir);
  for (const text of await readLines()) {
    const out = await clf(text, { top_k: null });
    const probs = {};
    for (const { label, score } of out) probs[label] = score;
    process.stdout.write(JSON.stringify({ label: out[0].label, probs }) + "\n");
  }
}

async function fillMask(dir) {
  const fill = await transformersPipeline("fill-mask", dir);
  for (const text of await readLines()) {
    const out = await fill(text, { top_k: 5 });
    process.stdout.write(JSON.stringify({ top: out.map((o) => [o.token, o.score]) }) + "\n");
  }
}

async function tokenize(dir) {
  const { AutoTokenizer, env } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  env.localModelPath = path.dirname(path.resolve(dir)) + "/";
  const tokenizer = await AutoTokenizer.from_pretrained(path.basename(path.resolve(dir)));
  for (const text of await readLines()) {
    const { input_ids } = tokenizer(text, { truncation: true, return_tensor: false });
    process.stdout.write(JSON.stringify({ ids: input_ids }) + "\n");
  }
}

async function runtime(dir) {
  const ort = require("onnxruntime-node");
  const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  const maskedLm = config.architectures[0] === "BertForMaskedLM";
  const maskId = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")).model.vocab["[MASK]"];
  const session = await ort.InferenceSession.create(path.join(dir, "onnx", "model.onnx"));
  const rows = (await readLines()).map((r) => r.ids);
  for (let start = 0; start < rows.length; start += 16) {
    const batch = rows.slice(start, start + 16);
    const len = Math.max(...batch.map((r) => r.length));
    const ids = new BigInt64Array(batch.length * len);
    const mask = new BigInt64Array(batch.length * len);
    batch.forEach((r, b) => r.forEach((id, t) => { ids[b * len + t] = BigInt(id); mask[b * len + t] = 1n; }));
    const dims = [batch.length, len];
    const out = await session.run({
      input_ids: new ort.Tensor("int64", ids, dims),
      attention_mask: new ort.Tensor("int64", mask, dims),
      token_type_ids: new ort.Tensor("int64", new BigInt64Array(batch.length * len), dims),
    });
    const logits = out.logits;
    if (!maskedLm) {
      const labels = logits.dims[1];
      batch.forEach((_, b) => {
        const row = Array.from(logits.data.slice(b * labels, (b + 1) * labels));
        process.stdout.write(JSON.stringify({ probs: softmax(row) }) + "\n");
      });
    } else {
      const vocab = logits.dims[2];
      batch.forEach((r, b) => {
        const probs = [];
        r.forEach((id, t) => {
          if (id !== maskId) return;
          const at = (b * len + t) * vocab;
          probs.push(softmax(Array.from(logits.data.slice(at, at + vocab))));
        });
        process.stdout.write(JSON.stringify({ probs }) + "\n");
      });
    }
  }
}

const [mode, dir] = process.argv.slice(2);
const run = { pipeline: classify, "fill-mask": fillMask, tokenize, ort: runtime }[mode];
if (!run || !dir) {
  console.error("usage: node consume.js pipeline|fill-mask|tokenize|ort DIR < input.jsonl");
  process.exit(2);
}
run(dir).catch((e) => { console.error(e); process.exit(1); });
