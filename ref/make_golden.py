#!/usr/bin/env python3
"""Writes the golden fixtures the C++ tests compare tlm against (llm.c's test_gpt2 idea).

For a config and a head, with dropout off, it records: the initial weights (HF names), a
padded batch (ids, attention mask, token types, labels), the logits, the loss, the gradient of
every parameter, and the losses of a 10-step AdamW run (lr schedule with warmup, clipping).

Usage (Debian's torch lives under /usr/bin/python3):
  /usr/bin/python3 ref/make_golden.py --preset tiny --out tests/golden
  /usr/bin/python3 ref/make_golden.py --preset wide --out build/golden --precision both
"""
import argparse
import datetime
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_mirror  # noqa: E402
import st  # noqa: E402

FORMAT_VERSION = 1

PRESETS = {
    # small enough to commit; every dim different so transposes cannot hide
    "tiny": dict(vocab_size=211, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=56,
                 max_position_embeddings=24, batch=3, seq=20),
    # the paper's real widths (BERT-1: 768 hidden, 12 heads, FFN 3072), a cut vocabulary; generated at test time
    # the paper's convolutional BERT-1 in small: their ConvolutionLayers (2 stages, an even 4x3 kernel,
    # 3 channels) as block 0, then one transformer layer
    "tiny_conv": dict(vocab_size=211, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=56,
                      max_position_embeddings=24, batch=3, seq=20, conv=dict(layers=2, kernel=[4, 3], channels=3)),
    # the same with the paper's padded batches: the front-end sees every sequence padded to 20 with [PAD]
    "tiny_conv_padded": dict(vocab_size=211, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                             intermediate_size=56, max_position_embeddings=24, batch=3, seq=20,
                             conv=dict(layers=2, kernel=[4, 3], channels=3, pad_to=20)),
    "wide": dict(vocab_size=1536, hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=64, batch=4, seq=48),
}

TRAJECTORY = dict(steps=10, lr=1e-3, warmup=2, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8, max_grad_norm=1.0)


def make_config(p, head):
    c = dict(architectures=[head], model_type="bert", vocab_size=p["vocab_size"], hidden_size=p["hidden_size"],
             num_hidden_layers=p["num_hidden_layers"], num_attention_heads=p["num_attention_heads"],
             intermediate_size=p["intermediate_size"], hidden_act="gelu",
             max_position_embeddings=p["max_position_embeddings"], type_vocab_size=2, layer_norm_eps=1e-12,
             initializer_range=0.02, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
             classifier_dropout=None, pad_token_id=0)
    if "conv" in p:
        c["tlm"] = {"conv": p["conv"]}
    if head == "BertForSequenceClassification":
        c["id2label"] = {str(i): f"class{i}" for i in range(5)}
        c["label2id"] = {f"class{i}": i for i in range(5)}
    return c


def make_batch(p, gen):
    b, t, v = p["batch"], p["seq"], p["vocab_size"]
    lengths = [t] + [max(4, t - 3 - 5 * i) for i in range(1, b)]  # one full row, the rest padded
    ids = torch.zeros(b, t, dtype=torch.int64)
    mask = torch.zeros(b, t, dtype=torch.int64)
    types = torch.zeros(b, t, dtype=torch.int64)
    labels = torch.full((b, t), -100, dtype=torch.int64)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(104, v, (n,), generator=gen)
        ids[r, 0], ids[r, n - 1] = 101, 102
        mask[r, :n] = 1
        if r == 1:
            types[r, n // 2 : n] = 1  # a second segment, to exercise token types
        for pos in range(1, n - 1):
            if torch.rand(1, generator=gen).item() < 0.3:
                labels[r, pos] = ids[r, pos]
                ids[r, pos] = 103  # [MASK]
        if (labels[r] != -100).sum() == 0:
            labels[r, 1] = ids[r, 1]
            ids[r, 1] = 103
    cls_labels = torch.randint(0, 5, (b,), generator=gen)
    return ids, mask, types, labels, cls_labels


def round_bf16(t):
    return t.bfloat16().float()


class Bf16Linear(torch.autograd.Function):
    """tlm's bf16 linear layer: every GEMM (y = x W^T, dx = dy W, dW = dy^T x) takes both operands
    rounded to bf16 (nearest-even) and sums their exact products in fp32; bias, its gradient and
    everything outside the linear layers stay fp32. torch.autocast differs only in also rounding
    each GEMM's result to bf16."""

    @staticmethod
    def forward(ctx, x, w, b):
        xr, wr = round_bf16(x), round_bf16(w)
        ctx.save_for_backward(xr, wr)
        ctx.has_bias = b is not None
        y = xr @ wr.t()
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, dy):
        xr, wr = ctx.saved_tensors
        dyr = round_bf16(dy)
        dx = dyr @ wr
        dw = dyr.reshape(-1, dy.shape[-1]).t() @ xr.reshape(-1, xr.shape[-1])
        db = dy.reshape(-1, dy.shape[-1]).sum(0) if ctx.has_bias else None
        return dx, dw, db


def bf16_linear(x, w, b=None):
    return Bf16Linear.apply(x, w, b)


def fp32_keys_values_of_last_layer(model, fp32_linear):
    """tlm runs a classification head's last layer with its key and value projections absorbed
    into attention (kernels.h, absorbed_attention_forward), whose products are all fp32: in bf16,
    those two layers' operands are never rounded. The same here; mathematically it is the same
    layer. A back end without absorbed attention (CUDA) projects them as linear layers: the
    *_cls_bf16_projected fixtures. Under MLM tlm absorbs only where few rows query (model.cpp);
    at the bf16 MLM fixtures' shapes it projects, as here (tests/test_golden.cpp asserts it)."""
    att = getattr(model.bert.encoder.layer[-1].attention, "self")
    for lin in (att.key, att.value):
        lin.forward = lambda x, lin=lin: fp32_linear(x, lin.weight, lin.bias)


def run(preset, head, out_dir, precision, fp32_linear, projected=False):
    p = PRESETS[preset]
    torch.manual_seed(1234)
    config = make_config(p, head)
    model = bert_mirror.build(config)
    is_mlm = head == "BertForMaskedLM"
    absorbed = precision == "bf16" and not is_mlm and not projected
    if absorbed:
        fp32_keys_values_of_last_layer(model, fp32_linear)
    gen = torch.Generator().manual_seed(99)
    ids, mask, types, mlm_labels, cls_labels = make_batch(p, gen)
    labels = mlm_labels if is_mlm else cls_labels

    tensors = {}
    for name, w in model.state_dict().items():
        tensors["param." + name] = w.clone()
    tensors.update({"input.ids": ids.to(torch.int32), "input.mask": mask.to(torch.int32),
                    "input.type_ids": types.to(torch.int32), "input.labels": labels.to(torch.int32)})

    logits, loss = model(ids, mask, types, labels)
    loss.backward()
    if is_mlm:
        logits = logits[mlm_labels != -100]  # (m, vocab): only the positions that carry a label
    tensors["out.logits"] = logits.detach()
    tensors["out.loss"] = loss.detach().reshape(1)
    for name, w in model.named_parameters():
        tensors["grad." + name] = w.grad.detach().clone()
    if bert_mirror.conv_config(config):
        # BatchNorm: the running statistics that training forward moved, and an inference forward
        # (model.eval()) that normalises with them.
        for name, w in model.state_dict().items():
            if "running_" in name:
                tensors["out.running." + name] = w.detach().clone()
        model.eval()
        with torch.no_grad():
            eval_logits, _ = model(ids, mask, types)
        model.train()
        tensors["out.eval_logits"] = (eval_logits[mlm_labels != -100] if is_mlm else eval_logits).detach()

    # 10 AdamW steps on the same batch: torch.optim.AdamW, HF linear schedule, clip_grad_norm_.
    torch.manual_seed(1234)
    model = bert_mirror.build(config)
    if absorbed:
        fp32_keys_values_of_last_layer(model, fp32_linear)
    tr = TRAJECTORY
    opt = torch.optim.AdamW(model.parameters(), lr=tr["lr"], betas=tr["betas"], eps=tr["eps"],
                            weight_decay=tr["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: bert_mirror.linear_schedule(s, tr["warmup"], tr["steps"]))
    losses = []
    for _ in range(tr["steps"]):
        opt.zero_grad()
        _, loss = model(ids, mask, types, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tr["max_grad_norm"])
        opt.step()
        sched.step()
        losses.append(loss.item())
    tensors["traj.losses"] = torch.tensor(losses, dtype=torch.float32)
    tensors["traj.final_word_embeddings"] = model.bert.embeddings.word_embeddings.weight.detach().clone()

    meta = {"format": "tlm-golden", "version": FORMAT_VERSION, "preset": preset, "head": head,
            "config": json.dumps(config), "trajectory": json.dumps(tr), "torch": torch.__version__,
            "generator": "ref/make_golden.py", "precision": precision, "seeds": "torch.manual_seed(1234) init, Generator(99) batch",
            "created": datetime.date.today().isoformat()}
    os.makedirs(out_dir, exist_ok=True)
    short = "mlm" if is_mlm else "cls"
    suffix = ("" if precision == "fp32" else "_" + precision) + ("_projected" if projected else "")
    path = os.path.join(out_dir, f"{preset}_{short}{suffix}.safetensors")
    st.save(path + ".tmp", tensors, meta)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: loss {tensors['out.loss'].item():.6f}, trajectory {losses[0]:.4f} -> {losses[-1]:.4f}")
    return tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32",
                    help="bf16: every linear layer's GEMMs on bf16-rounded operands (Bf16Linear); files *_bf16")
    a = ap.parse_args()
    torch.set_num_threads(1)  # reproducible reductions
    fp32_linear = torch.nn.functional.linear
    for precision in (["fp32", "bf16"] if a.precision == "both" else [a.precision]):
        # nn.Linear and the mirror's tied decoder call torch.nn.functional.linear at run time.
        torch.nn.functional.linear = bf16_linear if precision == "bf16" else fp32_linear
        for head in ("BertForMaskedLM", "BertForSequenceClassification"):
            run(a.preset, head, a.out, precision, fp32_linear)
            if precision == "bf16" and head == "BertForSequenceClassification":
                run(a.preset, head, a.out, precision, fp32_linear, projected=True)
    torch.nn.functional.linear = fp32_linear


if __name__ == "__main__":
    main()
