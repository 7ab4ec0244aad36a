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
    for line in sys.stdin:
        ids = torch.tensor([json.loads(line)["ids"]])
        with torch.no_grad():
            logits, _ = model(ids, torch.ones_like(ids), torch.zeros_like(ids))
        probs = torch.softmax(logits[0], dim=-1).tolist()
        print(json.dumps({"probs": dict(zip(labels, probs))}))


if __name__ == "__main__":
    main()
