#!/usr/bin/env python3
"""Class probabilities of a tlm classifier folder computed by the PyTorch mirror of Hugging
Face's BERT, for token ids given as JSON lines {"ids": [...]} (from `tlm tokenize`).

  /usr/bin/python3 ref/predict_mirror.py MODEL_DIR < ids.jsonl > probs.jsonl
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_mirror  # noqa: E402
import st  # noqa: E402


def main():
    model_dir = sys.argv[1]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    model = bert_mirror.build(config)
    weights, _ = st.load(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict(weights, strict=True)
    model.eval()
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    pad_to = (bert_mirror.conv_config(config) or {}).get("pad_to", 0)
    for line in sys.stdin:
        ids = torch.tensor([json.loads(line)["ids"]])
        mask = torch.ones_like(ids)
        if pad_to:  # the paper's padded batches: [PAD] up to pad_to, masked as keys
            extra = pad_to - ids.shape[1]
            ids = torch.cat([ids, torch.full((1, extra), config["pad_token_id"], dtype=ids.dtype)], dim=1)
            mask = torch.cat([mask, torch.zeros(1, extra, dtype=mask.dtype)], dim=1)
        with torch.no_grad():
            logits, _ = model(ids, mask, torch.zeros_like(ids))
        probs = torch.softmax(logits[0], dim=-1).tolist()
        print(json.dumps({"probs": dict(zip(labels, probs))}))


if __name__ == "__main__":
    main()
