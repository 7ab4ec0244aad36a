"""Minimal safetensors reader/writer (the format is a JSON header plus raw bytes), so the
reference scripts need only Debian's python3-torch and numpy."""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "F64": np.float64, "F16": np.float16}


def save(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16:  # numpy has no bfloat16: its raw bits
            a, code = t.detach().cpu().contiguous().view(torch.int16).numpy(), "BF16"
        else:
            a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
            code = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64",
                    np.dtype(np.float16): "F16"}[a.dtype]
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (tensors as torch tensors, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        if e["dtype"] == "BF16":
            bits = np.frombuffer(data[8 + n + b : 8 + n + end], dtype=np.int16).reshape(e["shape"])
            out[name] = torch.from_numpy(bits.copy()).view(torch.bfloat16)
            continue
        a = np.frombuffer(data[8 + n + b : 8 + n + end], dtype=_DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out, meta
