#!/usr/bin/env python3
"""The house's layering, checked from the #include lines: a file may include headers of its own
layer or of layers below it, never above (tools -> cli -> experiment -> train -> eval -> run ->
data/model -> text/kernels/backend -> core). Public headers (include/tlm/X.h) belong to the layer of the
source that implements them (src/<layer>/X.cpp); header-only ones are listed below. The experiment
layer launches training and evaluation only through job files, so it may not include their APIs.
Exit 1 with every violation listed."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
LEVEL = {"core": 0, "text": 1, "kernels": 1, "backend": 1, "data": 2, "model": 2, "run": 3, "eval": 4, "train": 5,
         "experiment": 6, "cli": 7, "tools": 8}
HEADER_ONLY = {"batch.h": "data", "rng.h": "core", "parallel.h": "core", "host_device.h": "core"}
# What the experiment layer must reach only through job files run as separate processes.
NOT_FROM_EXPERIMENT = {"trainer.h", "train_loop.h", "train_jobs.h", "eval_jobs.h", "evaluate.h", "inference.h",
                       "latency.h", "overlap.h"}


def layer_of_source(path):
    rel = path.relative_to(root)
    if rel.parts[0] == "tools":
        return "tools"
    if rel.parts[0] == "src":
        return rel.parts[1]
    raise ValueError(rel)


sources = {p.stem: layer_of_source(p) for p in (root / "src").rglob("*.cpp")}


def layer_of_include(name, problems, where):
    if name.startswith("tlm/"):
        h = name[4:]
        if h in HEADER_ONLY:
            return HEADER_ONLY[h]
        stem = h[:-2]
        if stem not in sources:
            problems.append(f"{where}: tlm/{h} has no src/<layer>/{stem}.cpp and is not listed as header-only")
            return None
        return sources[stem]
    first = name.split("/")[0]
    return first if first in LEVEL else None  # "cli/...", "data/...": private headers of that layer


problems = []
files = list((root / "src").rglob("*.cpp")) + list((root / "src").rglob("*.h")) + list((root / "tools").rglob("*.cpp"))
files += list((root / "include" / "tlm").glob("*.h"))
for f in files:
    if f.parts[-3:-1] == ("include", "tlm"):
        stem = f.stem
        me = HEADER_ONLY.get(f.name) or sources.get(stem)
        if me is None:
            problems.append(f"{f.relative_to(root)}: no src/<layer>/{stem}.cpp and not listed as header-only")
            continue
    else:
        me = layer_of_source(f)
    for m in re.finditer(r'^#include "([^"]+)"', f.read_text(), re.M):
        where = f"{f.relative_to(root)}"
        target = layer_of_include(m.group(1), problems, where)
        if target is None:
            continue
        if LEVEL[target] > LEVEL[me]:
            problems.append(f"{where} ({me}) includes {m.group(1)} ({target}): an arrow up the layers")
        if me == "experiment" and m.group(1).startswith("tlm/") and m.group(1)[4:] in NOT_FROM_EXPERIMENT:
            problems.append(f"{where} includes {m.group(1)}: the experiment layer runs that work through job files")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"layers: {len(files)} files, every include points down or sideways")
