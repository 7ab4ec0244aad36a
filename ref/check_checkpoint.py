#!/usr/bin/env python3
"""Loads a tlm checkpoint folder (config.json + model.safetensors) into the PyTorch mirror of
Hugging Face's BERT with a strict state-dict load (every HF name present, nothing unknown),
runs the batch in INPUTS and compares its logits with the ones tlm recorded there.

  /usr/bin/python3 ref/check_checkpoint.py CHECKPOINT_DIR INPUTS.safetensors [--tol 1e-5]

INPUTS holds input.ids, input.mask, input.type_ids (padded, int32) and expected.logits
((m, vocab) at input.mlm_positions for MLM, (b, labels) for classification).
Exits 0 when the logits match within tol (normwise relative), 1 otherwise.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_mirror  # noqa: E402
import st  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("inputs")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    with open(os.path.join(a.checkpoint, "config.json")) as f:
        config = json.load(f)
    model = bert_mirror.build(config)
    weights, meta = st.load(os.path.join(a.checkpoint, "model.safetensors"))
    if meta.get("format") != "pt":
        print("model.safetensors lacks metadata format=pt, which transformers requires")
        return 1
    model.load_state_dict(weights, strict=True)
    model.eval()
    inp, _ = st.load(a.inputs)
    ids, mask, types = (inp[k].long() for k in ("input.ids", "input.mask", "input.type_ids"))
    with torch.no_grad():
        logits, _ = model(ids, mask, types)
    if "input.mlm_rows" in inp:
        logits = logits[inp["input.mlm_rows"].long(), inp["input.mlm_cols"].long()]
    expected = inp["expected.logits"]
    err = ((logits - expected).abs().max() / expected.abs().max()).item()
    print(f"max relative logit difference {err:.3g} (tolerance {a.tol:g})")
    return 0 if err <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
