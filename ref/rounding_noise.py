#!/usr/bin/env python3
"""How far the bf16 mirror moves from itself when every value it rounds to bf16 is first nudged
by one fp32 ulp: the floor under which no other bf16 implementation (another GEMM library,
another device, another summation order) can be expected to agree with the golden fixtures'
10-step trajectory. tests/test_golden.cpp's bf16 trajectory tolerances quote its output.

Each perturbation k multiplies every value entering round_bf16 by (1 + s 2^-23), s = +-1 drawn per
value from a generator seeded with k, then replays make_golden.run on the same batch and weights.
It prints, per fixture, the worst absolute and relative difference of the 10 losses over the
perturbations.

Usage: /usr/bin/python3 ref/rounding_noise.py --preset wide --head cls --semantics projected --runs 16
"""
import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden  # noqa: E402

EXACT_ROUND = make_golden.round_bf16
HEADS = {"mlm": "BertForMaskedLM", "cls": "BertForSequenceClassification"}


def trajectory(preset, head, semantics, out_dir, nudge):
    """The mirror's 10 bf16 losses, with round_bf16 nudged by `nudge` (None: not at all)."""
    make_golden.round_bf16 = EXACT_ROUND if nudge is None else (lambda t: EXACT_ROUND(nudge(t)))
    fp32_linear = torch.nn.functional.linear
    torch.nn.functional.linear = make_golden.bf16_linear
    try:
        tensors = make_golden.run(preset, HEADS[head], out_dir, "bf16", fp32_linear,
                                  projected=semantics == "projected")
    finally:
        torch.nn.functional.linear = fp32_linear
        make_golden.round_bf16 = EXACT_ROUND
    return tensors["traj.losses"].double()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(make_golden.PRESETS), default="wide")
    ap.add_argument("--head", choices=sorted(HEADS), default="cls")
    ap.add_argument("--semantics", choices=["absorbed", "projected"], default="projected",
                    help="cls only: the last layer's keys and values in fp32 (absorbed, tlm's CPU) or projected "
                         "through bf16 linear layers (CUDA, and the *_projected fixtures)")
    ap.add_argument("--runs", type=int, default=16)
    a = ap.parse_args()
    if a.head == "mlm" and a.semantics == "absorbed":
        ap.error("the bf16 MLM fixtures project their keys and values (make_golden.py)")
    torch.set_num_threads(1)  # the same reductions as make_golden.py
    with tempfile.TemporaryDirectory() as out_dir:
        base = trajectory(a.preset, a.head, a.semantics, out_dir, None)
        worst_abs = worst_rel = 0.0
        for k in range(a.runs):
            gen = torch.Generator().manual_seed(k)

            def nudge(t, gen=gen):
                sign = torch.randint(0, 2, t.shape, generator=gen, dtype=torch.int64).to(t.dtype) * 2 - 1
                return t * (1 + sign * 2.0**-23)

            moved = (trajectory(a.preset, a.head, a.semantics, out_dir, nudge) - base).abs()
            worst_abs = max(worst_abs, moved.max().item())
            worst_rel = max(worst_rel, (moved / base.abs()).max().item())
            print(f"perturbation {k}: largest loss difference {moved.max().item():.3g}", flush=True)
    print(f"{a.preset} {a.head} bf16 ({a.semantics}): over {a.runs} perturbations the 10 losses moved by up to "
          f"{worst_abs:.3g} absolute, {worst_rel:.3g} relative")


if __name__ == "__main__":
    main()
