#!/usr/bin/env python3
"""tlm's training step against a plain PyTorch model written the way the paper's code runs
(Hugging Face style: full-vocabulary logits at every position, fp32, AdamW, clipping), on the
same configs, batch and thread count, printed side by side in one run.

  /usr/bin/python3 bench/bench_vs_pytorch.py --tlm build/tlm [--configs tiny bert1] [--tasks mlm cls]

Both sides: random tokens, batch 32 x 128, 15% masked (MLM) or 4 labels (classification),
dropout 0.1, one untimed warm-up step, then --steps timed steps.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import bert_mirror  # noqa: E402

CONFIGS = {  # the same shapes as `tlm bench train --config NAME`
    "bert6": (6, 768, 12), "bert1": (1, 768, 12), "bert1-wide": (1, 1536, 24), "mini": (4, 256, 4), "tiny": (2, 128, 2),
}


def torch_config(name, task, labels):
    layers, hidden, heads = CONFIGS[name]
    c = dict(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
             intermediate_size=4 * hidden, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
             initializer_range=0.02, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
             classifier_dropout=None, pad_token_id=0)
    if task == "cls":
        c["architectures"] = ["BertForSequenceClassification"]
        c["id2label"] = {str(i): str(i) for i in range(labels)}
    return c


def bench_torch(name, task, batch, seq, steps, labels):
    torch.manual_seed(0)
    model = bert_mirror.build(torch_config(name, task, labels))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    ids = torch.randint(1000, 30522, (batch, seq))
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones(batch, seq, dtype=torch.long)
    types = torch.zeros(batch, seq, dtype=torch.long)
    if task == "mlm":
        labels_t = torch.full((batch, seq), -100)
        masked = round(0.15 * (seq - 2))
        for r in range(batch):
            pos = torch.randperm(seq - 2)[:masked] + 1
            labels_t[r, pos] = ids[r, pos]
            ids[r, pos] = 103
    else:
        labels_t = torch.randint(0, labels, (batch,))
    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        _, loss = model(ids, mask, types, labels_t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t0)
    per_step = sum(times) / len(times)
    return {"ms_per_step": per_step * 1e3, "tokens_per_s": batch * seq / per_step}


def bench_tlm(exe, name, task, batch, seq, steps, threads):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        subprocess.run([exe, "bench", "train", "--config", name, "--task", task, "--batch", str(batch), "--seq",
                        str(seq), "--steps", str(steps), "--threads", str(threads), "--json", out], check=True,
                       stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tlm", default="build/tlm")
    ap.add_argument("--configs", nargs="+", default=["tiny", "mini", "bert1"], choices=sorted(CONFIGS))
    ap.add_argument("--tasks", nargs="+", default=["mlm", "cls"], choices=["mlm", "cls"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", help="write all results here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"batch {a.batch} x {a.seq}, {a.threads} threads, fp32, torch {torch.__version__}")
    print(f"{'config':<11}{'task':<5}{'torch tok/s':>12}{'tlm tok/s':>11}{'speed-up':>10}{'tlm ms/step':>13}"
          f"{'GFLOP/s':>9}{'MFU':>7}")
    rows = []
    for name in a.configs:
        for task in a.tasks:
            t = bench_torch(name, task, a.batch, a.seq, a.steps, 4)
            m = bench_tlm(a.tlm, name, task, a.batch, a.seq, a.steps, a.threads)
            speedup = m["tokens_per_s"] / t["tokens_per_s"]
            print(f"{name:<11}{task:<5}{t['tokens_per_s']:>12.0f}{m['tokens_per_s']:>11.0f}{speedup:>9.2f}x"
                  f"{m['ms_per_step']:>13.1f}{m['gflops']:>9.1f}{100 * m['mfu']:>6.1f}%", flush=True)
            rows.append({"config": name, "task": task, "torch": t, "tlm": m, "speedup": speedup})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
