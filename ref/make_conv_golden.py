#!/usr/bin/env python3
"""Writes the golden fixture of the convolutional front-end (tests/golden/conv_front.safetensors).

The module is the mirror's copy of the paper's ConvolutionLayers (ref/bert_mirror.py):
n x [Conv2d(c_i -> d, kernel, padding="same") -> BatchNorm2d(d) -> GELU], then
Conv2d(d -> 1, 1) -> BatchNorm2d(1) -> GELU, with the same state-dict names. tlm packs sequences,
so the mirror runs each convolution on each sequence's own image (zero padding at its own edges)
and each BatchNorm on all the sequences' pixels together: the semantics tlm claims.
For every case it records the input, the weights, one training forward (output, every gradient
of L = sum(y * R), the moved running statistics) and an inference forward with those statistics.

Usage: /usr/bin/python3 ref/make_conv_golden.py --out tests/golden
"""
import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_mirror  # noqa: E402
import st  # noqa: E402

CASES = {
    # name: (conv layers, kernel, channels, sequence lengths, width)
    "k4x3_d3": (2, (4, 3), 3, [5, 1, 7], 6),  # even kernel: torch pads one more after
    "k3_d4": (1, 3, 4, [4, 6], 5),
}


def run(name, layers, kernel, channels, lengths, width, gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = bert_mirror.ConvolutionLayers(layers, [1] + [channels] * layers, kernel)
    with torch.no_grad():  # non-trivial affine and running statistics, so every term is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.3, generator=gen)
                m.bias.normal_(0.0, 0.3, generator=gen)
                m.running_mean.normal_(0.0, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    n = sum(lengths)
    x = torch.randn(n, width, generator=gen, requires_grad=True)
    r = torch.randn(n, width, generator=gen)
    out = {f"{name}.x": x.detach().clone(), f"{name}.r": r, f"{name}.lengths": torch.tensor(lengths, dtype=torch.int32)}
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"{name}.param.{k}"] = v.detach().clone()
    model.train()
    y = model.packed(x, lengths)
    (y * r).sum().backward()
    out[f"{name}.y_train"] = y.detach()
    out[f"{name}.grad.x"] = x.grad.detach()
    for k, p in model.named_parameters():
        out[f"{name}.grad.{k}"] = p.grad.detach()
    for k, v in model.state_dict().items():
        if "running" in k:
            out[f"{name}.after.{k}"] = v.detach().clone()
    model.eval()
    with torch.no_grad():
        out[f"{name}.y_eval"] = model.packed(x, lengths)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(2507)
    tensors, meta = {}, {"format": "tlm-conv-golden", "torch": torch.__version__}
    for name, (layers, kernel, channels, lengths, width) in CASES.items():
        tensors.update(run(name, layers, kernel, channels, lengths, width, gen))
        ks, kh = (kernel, kernel) if isinstance(kernel, int) else kernel
        meta[f"{name}.config"] = f"{layers} {ks} {kh} {channels} {width}"
    os.makedirs(args.out, exist_ok=True)
    st.save(os.path.join(args.out, "conv_front.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
