#!/usr/bin/env python3
"""tlm's training step against PyTorch, side by side in one run, on the same configs, batch and
thread count. Five columns of tokens/s:
  - paper:    PyTorch written the way the paper's code runs (Hugging Face style: every layer and the
              full-vocabulary MLM logits at every position), fp32;
  - same:     PyTorch doing exactly tlm's work, as a careful user would write it: the hidden states
              gathered at the rows the head reads before the head, and the last layer's queries,
              attention output and FFN only at those rows, fp32. The last layer's keys and values are
              absorbed into attention where tlm bf16 absorbs them (its JSON's last_layer_absorbed:
              always under a classification head, under MLM where few rows query), else projected
              at every row;
  - same-ac:  that model under torch.autocast(device_type="cpu", dtype=torch.bfloat16);
  - tlm fp32 and tlm bf16 (`tlm bench train --precision`).
Then the FLOPs each side executes per step (paper, same work, and tlm bf16's own count, which equals
the same work's), so the work avoided and the speed per FLOP read apart, and tlm's MFU against the
GEMM ceiling its back end measures in the same run (fp32 SGEMM for fp32, its bf16 GEMM for bf16).
tlm fp32 may absorb where bf16 does not (MLM: absorbing pays more against fp32 projections), so its
MFU is against its own count, which the JSON keeps.

  /usr/bin/python3 bench/bench_vs_pytorch.py --tlm build/tlm [--configs tiny bert1] [--tasks mlm cls]

All sides: random tokens, batch 32 x 128, 15% masked (MLM) or 4 labels (classification), dropout
0.1, AdamW, clipping, one untimed warm-up step, then --steps timed steps.

Both sides get transparent huge pages for their large buffers: tlm marks its own (MADV_HUGEPAGE);
torch 1.13 cannot, so this script re-runs itself with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, which
makes glibc's malloc (2.35 on) mark them (measured here on 2 Zen 4 cores, same-work under autocast,
means of 4 interleaved rounds: bert1 MLM +8%, bert1 classification +20%, tiny MLM +51%, tiny
classification +6%; bench/README.md). --no-torch-huge-pages measures
PyTorch as it runs by default (the tunable taken out). tlm runs without the tunable. The header says
what was in force: glibc's version and the kernel's THP mode.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "--no-torch-huge-pages"


def without_tunable(env):
    """env with the huge-page tunable taken out of GLIBC_TUNABLES (tlm is run as a user runs it)."""
    env = dict(env)
    kept = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and t != HUGE_PAGES_TUNABLE]
    if kept:
        env["GLIBC_TUNABLES"] = ":".join(kept)
    else:
        env.pop("GLIBC_TUNABLES", None)
    return env


def rerun_with_torch_huge_pages(opt_out):
    """Re-runs this script once with the tunable added (or, opting out, taken out) unless the
    environment already is so; glibc reads GLIBC_TUNABLES only when a process starts."""
    has = HUGE_PAGES_TUNABLE in os.environ.get("GLIBC_TUNABLES", "").split(":")
    if has == (not opt_out):
        return
    env = without_tunable(os.environ)
    if not opt_out:
        env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES", ""), HUGE_PAGES_TUNABLE) if t)
    os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)


def huge_pages_in_force():
    """glibc's version and the kernel's THP mode, for the header."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = f.read().strip()
    except OSError:
        thp = "absent"
    return f"glibc {platform.libc_ver()[1]}, THP {thp}"


import torch  # noqa: E402

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


def paper_flops(name, task, batch, seq, labels, vocab=30522):
    """FLOPs of one training step of the paper-style model (3x the forward's GEMM FLOPs: forward,
    input gradients, weight gradients), counted as tlm's BertModel::train_flops counts its own."""
    layers, c, _ = CONFIGS[name]
    f, n = 4 * c, batch * seq
    flops = layers * (6.0 * n * (4 * c * c + 2 * c * f) + batch * 12.0 * seq * seq * c)
    if task == "mlm":
        return flops + 6.0 * n * (c * c + c * vocab)
    return flops + 6.0 * batch * (c * c + c * labels)


def same_work_flops(name, task, batch, seq, labels, absorbed, vocab=30522):
    """FLOPs of one training step of same_work_loss's model, counted as paper_flops: the last layer at
    the r rows the head reads, its keys and values projected at every row, or absorbed (per query
    row 2 c^2 for q Wk and z Wv^T, per key 2 heads c for the scores and z, each x3 with backward)."""
    layers, c, heads = CONFIGS[name]
    f, n = 4 * c, batch * seq
    r = batch * (max(1, math.floor(0.15 * (seq - 2) + 0.5)) if task == "mlm" else 1)
    flops = (layers - 1) * (6.0 * n * (4 * c * c + 2 * c * f) + batch * 12.0 * seq * seq * c)
    flops += 6.0 * r * (2 * c * c + 2 * c * f)
    if absorbed:
        pairs = r * seq if task == "mlm" else n  # (query, key) pairs: every query sees its sequence
        flops += 6.0 * (2.0 * r * c * c + 2.0 * heads * c * pairs)
    else:
        flops += 6.0 * n * 2 * c * c + r * 12.0 * seq * c
    if task == "mlm":
        return flops + 6.0 * r * (c * c + c * vocab)
    return flops + 6.0 * batch * (c * c + c * labels)


def absorbed_context(sa, x, xs, ext):
    """tlm's absorbed keys and values (src/kernels/kernels.h): per head h, scores = (q_h Wk_h) x^T /
    sqrt(d) (the key bias changes no softmax) and ctx_h = (P x) Wv_h^T + rowsum(P) bv_h, P after
    dropout. x (batch, t, c) the layer's input, xs (batch, r, c) the rows that query."""
    c = x.shape[-1]
    q = sa.split(sa.query(xs))                                         # (batch, heads, r, d)
    qa = torch.einsum("bhrd,hdc->bhrc", q, sa.key.weight.view(sa.heads, sa.d, c))
    probs = sa.dropout(torch.softmax(qa @ x[:, None].transpose(-1, -2) / math.sqrt(sa.d) + ext, dim=-1))
    z = probs @ x[:, None]                                             # (batch, heads, r, c)
    ctx = torch.einsum("bhrc,hdc->bhrd", z, sa.value.weight.view(sa.heads, sa.d, c))
    ctx = ctx + probs.sum(-1, keepdim=True) * sa.value.bias.view(sa.heads, 1, sa.d)
    return ctx.permute(0, 2, 1, 3).reshape(xs.shape)


def same_work_loss(model, ids, mask, types, labels_t, task, rows, absorbed=False):
    """The mirror's model run on tlm's work: rows (batch, r) are the positions the head reads (the
    masked ones, or [CLS]); the last layer computes queries, attention output and FFN only there, and
    with `absorbed` (where tlm absorbs: always under a classification head, under MLM where few
    rows query) its keys and values are absorbed into attention instead of projected at every row."""
    bert = model.bert
    x = bert.embeddings(ids, types)
    ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(torch.float32).min
    layers = bert.encoder.layer
    for layer in layers[:-1]:
        x = layer(x, ext)
    last = layers[-1]
    sa = getattr(last.attention, "self")
    c = x.shape[-1]
    xs = torch.gather(x, 1, rows[..., None].expand(-1, -1, c))  # (batch, r, c)
    if not absorbed:
        q, k, v = sa.split(sa.query(xs)), sa.split(sa.key(x)), sa.split(sa.value(x))
        probs = sa.dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(sa.d) + ext, dim=-1))
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(xs.shape)
    else:
        ctx = absorbed_context(sa, x, xs, ext)
    a = last.attention.output(ctx, xs)
    h = last.output(last.intermediate(a), a)  # (batch, r, c)
    if task == "mlm":
        logits = model.cls(h)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                 torch.gather(labels_t, 1, rows).reshape(-1))
    pooled = torch.tanh(bert.pooler.dense(h[:, 0]))
    return torch.nn.functional.cross_entropy(model.classifier(model.dropout(pooled)).float(), labels_t)


def check_same_work(name, task, labels, absorbed):
    """Validates before timing: the same-work model's loss equals the full model's (dropout off);
    absorbed, it also equals the projected same-work model's with dropout on and padded rows (where
    the probabilities' row sums are not 1), the two drawing the same masks."""
    torch.manual_seed(0)
    model = bert_mirror.build(torch_config(name, task, labels))
    model.eval()
    b, s = 2, 32
    ids = torch.randint(1000, 30522, (b, s))
    mask, types = torch.ones(b, s, dtype=torch.long), torch.zeros(b, s, dtype=torch.long)
    if task == "mlm":
        labels_t = torch.full((b, s), -100)
        for r in range(b):
            pos = torch.randperm(s - 2)[:5] + 1
            labels_t[r, pos] = ids[r, pos]
            ids[r, pos] = 103
        rows = (labels_t != -100).nonzero()[:, 1].view(b, -1)
    else:
        labels_t, rows = torch.randint(0, labels, (b,)), torch.zeros(b, 1, dtype=torch.long)
    with torch.no_grad():
        full = model(ids, mask, types, labels_t)[1].item()
        same = same_work_loss(model, ids, mask, types, labels_t, task, rows, absorbed).item()
    if abs(full - same) > 1e-5 * abs(full):
        sys.exit(f"{name} {task}: the same-work model's loss {same} is not the full model's {full}")
    if absorbed:
        mask[1, -6:] = 0  # padding at the end of the second sequence: keys no query may see
        sa = getattr(model.bert.encoder.layer[-1].attention, "self")
        with torch.no_grad():  # initialised to 0, the biases would hide a wrong bias term
            sa.key.bias.normal_(0, 0.5)
            sa.value.bias.normal_(0, 0.5)
        model.train()
        losses = []
        for absorb in (False, True):
            torch.manual_seed(7)
            with torch.no_grad():
                losses.append(same_work_loss(model, ids, mask, types, labels_t, task, rows, absorb).item())
        if abs(losses[0] - losses[1]) > 1e-5 * abs(losses[0]):
            sys.exit(f"{name} {task}: the absorbed same-work loss {losses[1]} is not the projected one's {losses[0]}"
                     " (dropout on, padded rows)")


class Fp32LayerNorm(torch.nn.LayerNorm):
    """LayerNorm on a float32 copy of its input: torch 1.13's CPU autocast has no LayerNorm of a
    bf16 input with fp32 weights (it fails), and later versions compute it in fp32 anyway."""

    def forward(self, x):
        return torch.nn.functional.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps)


def bench_torch(name, task, batch, seq, steps, labels, mode, absorbed):
    """mode: paper, same or same-ac (same work under bf16 autocast)."""
    torch.manual_seed(0)
    model = bert_mirror.build(torch_config(name, task, labels))
    if mode == "same-ac":
        for m in model.modules():
            if type(m) is torch.nn.LayerNorm:
                m.__class__ = Fp32LayerNorm
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    ids = torch.randint(1000, 30522, (batch, seq))
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones(batch, seq, dtype=torch.long)
    types = torch.zeros(batch, seq, dtype=torch.long)
    if task == "mlm":
        labels_t = torch.full((batch, seq), -100)
        masked = max(1, math.floor(0.15 * (seq - 2) + 0.5))  # as tlm bench train: max(1, lround(...))
        for r in range(batch):
            pos = torch.randperm(seq - 2)[:masked] + 1
            labels_t[r, pos] = ids[r, pos]
            ids[r, pos] = 103
    else:
        labels_t = torch.randint(0, labels, (batch,))
    # the rows the head reads, per sequence (every sequence has the same count here)
    if task == "mlm":
        counts = (labels_t != -100).sum(dim=1)
        assert bool((counts == counts[0]).all()), "the same-work model needs the same masked count per sequence"
        rows = (labels_t != -100).nonzero()[:, 1].view(batch, -1)
    else:
        rows = torch.zeros(batch, 1, dtype=torch.long)
    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        if mode == "paper":
            _, loss = model(ids, mask, types, labels_t)
        else:
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=mode == "same-ac"):
                loss = same_work_loss(model, ids, mask, types, labels_t, task, rows, absorbed)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t0)
    per_step = sum(times) / len(times)
    return {"ms_per_step": per_step * 1e3, "tokens_per_s": batch * seq / per_step, "loss": loss.item()}


def bench_tlm(exe, name, task, batch, seq, steps, threads, precision):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        subprocess.run([exe, "bench", "train", "--config", name, "--task", task, "--batch", str(batch), "--seq",
                        str(seq), "--steps", str(steps), "--threads", str(threads), "--precision", precision,
                        "--json", out], check=True, stdout=subprocess.DEVNULL, env=without_tunable(os.environ))
        with open(out) as f:
            return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--tlm", default="build/tlm")
    ap.add_argument("--configs", nargs="+", default=["tiny", "mini", "bert1"], choices=sorted(CONFIGS))
    ap.add_argument("--tasks", nargs="+", default=["mlm", "cls"], choices=["mlm", "cls"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", help="write all results here")
    ap.add_argument(OPT_OUT, action="store_true", help="run PyTorch without glibc's huge-page tunable (its default)")
    a = ap.parse_args()
    rerun_with_torch_huge_pages(a.no_torch_huge_pages)
    torch.set_num_threads(a.threads)
    coretype = os.environ.get("OPENBLAS_CORETYPE", "not set")
    print(f"batch {a.batch} x {a.seq}, {a.threads} threads, torch {torch.__version__}, "
          f"OPENBLAS_CORETYPE {coretype}, PyTorch {'without' if a.no_torch_huge_pages else 'with'} glibc's "
          f"huge-page tunable (GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}; {huge_pages_in_force()}); "
          f"tokens/s, then GFLOP per step executed and tlm's MFU")
    print(f"{'config':<11}{'task':<5}{'paper':>8}{'same':>8}{'same-ac':>9}{'tlm fp32':>10}{'tlm bf16':>10}"
          f"{'bf16/best':>10}{'GF paper':>10}{'GF same':>9}{'GF tlm':>8}{'MFU fp32':>10}{'MFU bf16':>10}")
    rows = []
    for name in a.configs:
        for task in a.tasks:
            m = {p: bench_tlm(a.tlm, name, task, a.batch, a.seq, a.steps, a.threads, p) for p in ("fp32", "bf16")}
            absorbed = m["bf16"]["last_layer_absorbed"]  # tlm bf16's work: see same_work_loss
            check_same_work(name, task, 4, absorbed)
            t = {mode: bench_torch(name, task, a.batch, a.seq, a.steps, 4, mode, absorbed)
                 for mode in ("paper", "same", "same-ac")}
            best_torch = max(x["tokens_per_s"] for x in t.values())
            speedup = m["bf16"]["tokens_per_s"] / best_torch
            gf_paper = paper_flops(name, task, a.batch, a.seq, 4) / 1e9
            gf_same = same_work_flops(name, task, a.batch, a.seq, 4, absorbed) / 1e9
            gf_tlm = m["bf16"]["flops_per_step"] / 1e9
            print(f"{name:<11}{task:<5}{t['paper']['tokens_per_s']:>8.0f}{t['same']['tokens_per_s']:>8.0f}"
                  f"{t['same-ac']['tokens_per_s']:>9.0f}{m['fp32']['tokens_per_s']:>10.0f}{m['bf16']['tokens_per_s']:>10.0f}"
                  f"{speedup:>9.2f}x{gf_paper:>10.1f}{gf_same:>9.1f}{gf_tlm:>8.1f}{100 * m['fp32']['mfu']:>9.1f}%"
                  f"{100 * m['bf16']['mfu']:>9.1f}%", flush=True)
            rows.append({"config": name, "task": task, "torch": t, "tlm": m, "bf16_over_best_torch": speedup,
                         "same_work_absorbed": absorbed,
                         "gflop_per_step": {"paper": gf_paper, "same_work": gf_same, "tlm": gf_tlm}})
    print(f"tlm fp32: {m['fp32']['backend']}; tlm bf16: {m['bf16']['backend']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
