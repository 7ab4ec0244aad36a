#!/usr/bin/env python3
"""Data-parallel scaling of tlm: measured on this machine, then projected to clusters.

Measured, in one run:
  1. allreduce: `mpirun -n N tlm bench allreduce` for the gradients of tiny, bert1 and bert6 (N = 2,
     and 4 oversubscribed when the machine has fewer cores), tlm's sum (a reduction to rank 0 and
     its broadcast, so every rank holds the same bits) beside Open MPI's own MPI_Allreduce, and
     PyTorch's torch.distributed all_reduce (gloo, what CPU DDP uses) on the same sizes, side by side;
  2. step: `tlm bench train` (MLM, global batch 32 x 128) on 1 process with every core, on N = 2
     ranks of one thread each (and 4, oversubscribed): ms per step and the share spent summing;
  3. rows: distinct word pieces in batches of 32 x 128 tokens of real Wikipedia, one batch per
     rank, and their union over N ranks: the word-embedding rows a classification step touches
     (in MLM every row has a gradient: the decoder is tied to the embeddings), when
     ../shared/data is there.
Projected (weak scaling: every node computes a local batch of 32 x 128 and the gradients are summed
each step), for bert1 and bert6 pre-training on 2-64 nodes over 10 and 100 Gbit/s Ethernet with a
ring allreduce: step time and scaling efficiency for fp32 gradients summed after the backward pass
(as tlm does), bf16 gradients, and the bound of an ideal overlap with the backward pass.

  /usr/bin/python3 bench/scaling.py --tlm build/tlm [--configs tiny bert1 bert6] [--json out.json]
"""
import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = os.path.dirname(os.path.abspath(__file__))
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
# The network model of the projection: bandwidth (bytes/s) and per-message latency (s) of one link.
NETWORKS = {"10 GbE": (1.25e9, 30e-6), "100 GbE": (12.5e9, 5e-6)}
NODES = [2, 4, 8, 16, 32, 64]
HIDDEN, VOCAB = 768, 30522


def mpirun(n, cores):
    cmd = ["mpirun", "-n", str(n), "--bind-to", "none"]
    return cmd + (["--oversubscribe"] if n > cores else [])


def run_json(cmd):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        subprocess.run(cmd + ["--json", out], check=True, env=MPI_ENV, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def gloo_worker(rank, n, sizes, repeat, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=n)
    out = {}
    for name, values in sizes:
        x = torch.ones(values)
        dist.all_reduce(x)  # untimed first, and checked
        assert float(x[0]) == n and float(x[-1]) == n
        times = []
        for _ in range(repeat):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - t0)
        out[name] = sorted(times)[len(times) // 2]
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


def gloo_allreduce(n, sizes, repeat):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=gloo_worker, args=(r, n, sizes, repeat, port, queue)) for r in range(n)]
    for p in procs:
        p.start()
    result = queue.get(timeout=600)
    for p in procs:
        p.join()
    return result


def touched_rows(tlm, data, batches=64, seq=128, batch=32):
    """Distinct word pieces per batch of `batch` x `seq` tokens of Wikipedia and their union over N
    consecutive batches (N ranks' batches of one step), from tlm's own tokenizer."""
    corpus = os.path.join(data, "wikipedia", "enwiki-2015-part-aa.jsonl.gz")
    vocab = os.path.join(data, "vocab", "bert-base-uncased.txt")
    if not (os.path.exists(corpus) and os.path.exists(vocab)):
        return None
    need = batches * batch * (seq - 2)
    lines, pieces = [], 0
    with gzip.open(corpus, "rt") as f:
        for line in f:
            text = json.loads(line).get("text", "")
            lines.append(json.dumps(text))
            pieces += len(text.split()) * 1.3
            if pieces > need * 1.2:
                break
    out = subprocess.run([tlm, "tokenize", "--vocab", vocab, "--json-input", "--ids-only"], input="\n".join(lines),
                         capture_output=True, text=True, check=True).stdout
    ids = [i for l in out.splitlines() for i in json.loads(l)["ids"][1:-1]]
    per = batch * (seq - 2)
    chunks = [set(ids[k * per:(k + 1) * per]) for k in range(min(batches, len(ids) // per))]
    res = {"per_batch": sum(len(c) for c in chunks) / len(chunks), "union": {}}
    for n in [1] + NODES:
        if n > len(chunks):
            break
        groups = [set().union(*chunks[g:g + n]) for g in range(0, len(chunks) - n + 1, n)]
        res["union"][n] = sum(len(u) for u in groups) / len(groups)
    return res


def ring(bytes_, n, bw, lat):
    """A ring allreduce: 2(n-1) steps, each moving bytes/n over every link."""
    return 2 * (n - 1) / n * bytes_ / bw + 2 * (n - 1) * lat


def project(step_s, values, n, bw, lat):
    """Seconds of one pre-training step on n nodes: compute, then the gradient exchange (as tlm
    does: after the backward pass), and the bound of an ideal overlap. In MLM the decoder is tied
    to the word embeddings, so their gradient is dense (softmax puts weight on every row) and
    complete only when the backward pass ends: overlap could hide every other tensor, not it."""
    emb = VOCAB * HIDDEN
    out = {}
    for mode, width in (("fp32", 4), ("bf16", 2)):
        out[mode] = step_s + ring(width * values, n, bw, lat)
        out[mode + " overlapped"] = step_s + ring(width * emb, n, bw, lat)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tlm", default=os.path.join(HERE, "..", "build", "tlm"))
    ap.add_argument("--configs", nargs="+", default=["tiny", "bert1", "bert6"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--speedup", type=float, default=16.0,
                    help="a second projection for nodes this many times faster than this machine (assumed)")
    ap.add_argument("--json")
    a = ap.parse_args()
    tlm = os.path.abspath(a.tlm)
    cores = os.cpu_count()
    print(f"machine: {cores} cores; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}; "
          f"torch {torch.__version__}")
    ranks = [2, 4]
    result = {"cores": cores, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "allreduce": {}, "step": {}}

    # 1. allreduce
    for n in ranks:
        flag = " (oversubscribed)" if n > cores else ""
        r = run_json(mpirun(n, cores) + [tlm, "bench", "allreduce", "--configs", ",".join(a.configs),
                                         "--repeat", str(a.repeat)])
        g = gloo_allreduce(n, [(s["config"], s["values"]) for s in r["sizes"]], a.repeat)
        result["allreduce"][n] = {"mpi": r["mpi"], "oversubscribed": n > cores, "sizes": r["sizes"], "gloo_s": g}
        print(f"\nallreduce over {n} ranks{flag}, {r['mpi']}, shared memory, median of {a.repeat}:")
        print("| gradient | values | MB | tlm sum ms | GB/s | MPI_Allreduce ms | GB/s | torch gloo ms | GB/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in r["sizes"]:
            b = s["bytes"]
            t, m, gl = s["tlm_sum_ms"] / 1e3, s["mpi_allreduce_ms"] / 1e3, g[s["config"]]
            print(f"| {s['config']} | {s['values']:,} | {b / 1e6:.1f} | {t * 1e3:.1f} | {b / t / 1e9:.2f} | "
                  f"{m * 1e3:.1f} | {b / m / 1e9:.2f} | {gl * 1e3:.1f} | {b / gl / 1e9:.2f} |")

    # 2. step
    print(f"\ntraining step, MLM, global batch 32 x 128, {a.steps} timed steps after 1 untimed:")
    print("| config | processes x threads | ms/step | tokens/s | summing ms | summing share |")
    print("|---|---|---:|---:|---:|---:|")
    for name in a.configs:
        base = [tlm, "bench", "train", "--config", name, "--task", "mlm", "--steps", str(a.steps)]
        rows = {1: run_json(base + ["--threads", str(cores)])}
        for n in ranks:
            rows[n] = run_json(mpirun(n, cores) + base + ["--threads", str(max(1, cores // n))])
        result["step"][name] = rows
        for n, r in rows.items():
            label = f"{n} x {r['threads']}" + (" (oversubscribed)" if n > cores else "")
            share = r["comm_ms_per_step"] / r["ms_per_step"]
            print(f"| {name} | {label} | {r['ms_per_step']:,.0f} | {r['tokens_per_s']:,.0f} | "
                  f"{r['comm_ms_per_step']:.1f} | {100 * share:.1f}% |")

    # 3. rows touched
    rows = touched_rows(tlm, a.data)
    result["rows"] = rows
    if rows:
        print(f"\nword pieces of real Wikipedia per batch of 32 x 128: {rows['per_batch']:.0f} distinct of {VOCAB} "
              "(the embedding rows a classification step touches); union over N batches: " +
              ", ".join(f"N={n}: {u:.0f}" for n, u in rows["union"].items()))
    else:
        print("\n(no ../shared/data: the touched-rows measurement is skipped)")

    # Projection
    result["projection"] = {}
    for name in [c for c in ("bert1", "bert6") if c in a.configs]:
        one = result["step"][name][1]
        values = next(s["values"] for s in result["allreduce"][2]["sizes"] if s["config"] == name)
        for speed, what in ((1.0, "nodes like this machine (measured step)"),
                            (a.speedup, f"nodes {a.speedup:g}x faster (assumed)")):
            step_s = one["ms_per_step"] / 1e3 / speed
            print(f"\n{name}: {what}: compute {step_s * 1e3:,.0f} ms/step per node, gradient {values / 1e6:.1f}M values; "
                  "step ms (scaling efficiency) on N nodes")
            print("| network | gradient exchange | " + " | ".join(f"N={n}" for n in NODES) + " |")
            print("|---|---|" + "---:|" * len(NODES))
            for net, (bw, lat) in NETWORKS.items():
                proj = {n: project(step_s, values, n, bw, lat) for n in NODES}
                result["projection"][f"{name}/{speed:g}/{net}"] = proj
                for mode in proj[NODES[0]]:
                    cells = " | ".join(f"{proj[n][mode] * 1e3:,.0f} ({100 * step_s / proj[n][mode]:.0f}%)" for n in NODES)
                    print(f"| {net} | {mode} | {cells} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
