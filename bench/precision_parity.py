#!/usr/bin/env python3
"""bf16 against fp32 on the demo's own one-layer model: pre-training parity and fine-tuning parity.

Takes a finished demo folder (tlm reproduce --preset demo), re-runs its one-layer pre-training on
gcide (seed 1, the same data, vocabulary and settings) in fp32 and in bf16, then fine-tunes each on
WordNet supersenses with the demo's settings (lr 1e-3) for seeds 1-3, and reports:
  - the validation MLM losses and their relative difference (the issue asks for within 1%);
  - the test accuracy per seed and the paired difference bf16 - fp32 with its 95% interval
    (Student's t, 2 degrees of freedom; asked: within +-2 points).
The runs are written under --out (the demo folder is only read).

Usage: /usr/bin/python3 bench/precision_parity.py --tlm build/tlm --demo demo --out parity
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import subprocess
import sys

T_975_DF2 = 4.302652729911275  # Student's t quantile, 0.975, 2 degrees of freedom


def job_file(demo, title_pattern):
    for path in sorted(glob.glob(os.path.join(demo, "runs", "*", "job.toml"))):
        with open(path) as f:
            first = f.readline()
        if re.search(title_pattern, first):
            return path
    sys.exit(f"{demo}: no run titled like {title_pattern!r}; is it a finished demo folder?")


def run(tlm, demo, kind, job, sets, log, threads=2, env=None):
    cmd = [tlm, kind, "--config", os.path.relpath(job, demo), "--threads", str(threads)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    with open(log, "w") as out:
        r = subprocess.run(cmd, cwd=demo, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}; see {log}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tlm", required=True)
    ap.add_argument("--demo", required=True, help="a finished demo folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    tlm, demo, out = (os.path.abspath(p) for p in (a.tlm, a.demo, a.out))
    os.makedirs(out, exist_ok=True)
    pre_job = job_file(demo, r"pre-train shallow on gcide \(60000 sequences, seed 1\)")
    results = {"demo": demo, "pretrain_job": pre_job, "precisions": {}}
    for precision in ("fp32", "bf16"):
        pre_out = os.path.join(out, f"pretrain-{precision}")
        run(tlm, demo, "pretrain", pre_job,
            {"out": pre_out, "precision": precision, "cache_dir": os.path.join(out, "cache"), "auto_resume": "true"},
            pre_out + ".log")
        with open(os.path.join(pre_out, "metrics.json")) as f:
            m = json.load(f)
        with open(os.path.join(pre_out, "manifest.json")) as f:
            backend = json.load(f)["backend"]
        r = {"valid_mlm_loss": m["final"]["valid_mlm_loss"], "pretrain_seconds": m["totals"]["wall_seconds"],
             "backend": backend, "test_accuracy": []}
        for seed in range(1, a.seeds + 1):
            ft_job = job_file(demo, rf"fine-tune pre-trained shallow on wordnet-supersense \(seed {seed}, lr 0.001\)")
            ft_out = os.path.join(out, f"finetune-{precision}-seed{seed}")
            run(tlm, demo, "finetune", ft_job,
                {"out": ft_out, "init": pre_out, "precision": precision, "cache_dir": os.path.join(out, "cache"),
                 "auto_resume": "true"}, ft_out + ".log")
            with open(os.path.join(ft_out, "metrics.json")) as f:
                r["test_accuracy"].append(json.load(f)["test"]["accuracy"])
        results["precisions"][precision] = r
        print(f"{precision}: valid MLM loss {r['valid_mlm_loss']:.4f} ({r['pretrain_seconds']:.0f} s, {backend}); "
              f"test accuracy {[round(x, 4) for x in r['test_accuracy']]}", flush=True)

    # What a paired difference of fine-tuned accuracies is made of, from the fp32 pre-trained model:
    # bf16 fine-tuning alone, and the floor any perturbation sets (fp32 again, one thread: only the
    # summation order of the GEMMs differs).
    fp32_pre = os.path.join(out, "pretrain-fp32")
    for arm, precision, threads in (("bf16-finetune-only", "bf16", 2), ("fp32-one-thread", "fp32", 1)):
        accs = []
        for seed in range(1, a.seeds + 1):
            ft_job = job_file(demo, rf"fine-tune pre-trained shallow on wordnet-supersense \(seed {seed}, lr 0.001\)")
            ft_out = os.path.join(out, f"finetune-{arm}-seed{seed}")
            run(tlm, demo, "finetune", ft_job,
                {"out": ft_out, "init": fp32_pre, "precision": precision, "cache_dir": os.path.join(out, "cache"),
                 "auto_resume": "true"}, ft_out + ".log", threads)
            with open(os.path.join(ft_out, "metrics.json")) as f:
                accs.append(json.load(f)["test"]["accuracy"])
        diffs = [100 * (x - y) for x, y in zip(accs, results["precisions"]["fp32"]["test_accuracy"])]
        m = statistics.mean(diffs)
        h = T_975_DF2 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) == 3 else float("nan")
        results[arm] = {"test_accuracy": accs, "difference_points": diffs, "mean": m, "ci95": [m - h, m + h]}
        print(f"{arm} (from the fp32 pre-training) - fp32: per seed {[round(d, 2) for d in diffs]}, mean {m:+.2f}, "
              f"95% interval [{m - h:+.2f}, {m + h:+.2f}]", flush=True)

    # The floor set by the pre-trained encoder: fp32 pre-training again with oneDNN's fp32 GEMM
    # (TLM_CPU_GEMM=onednn: only the summation order differs), then the same fp32 fine-tuning.
    onednn_pre = os.path.join(out, "pretrain-fp32-onednn")
    run(tlm, demo, "pretrain", pre_job,
        {"out": onednn_pre, "precision": "fp32", "cache_dir": os.path.join(out, "cache"), "auto_resume": "true"},
        onednn_pre + ".log", env={"TLM_CPU_GEMM": "onednn"})
    with open(os.path.join(onednn_pre, "metrics.json")) as f:
        onednn_loss = json.load(f)["final"]["valid_mlm_loss"]
    accs = []
    for seed in range(1, a.seeds + 1):
        ft_job = job_file(demo, rf"fine-tune pre-trained shallow on wordnet-supersense \(seed {seed}, lr 0.001\)")
        ft_out = os.path.join(out, f"finetune-from-onednn-seed{seed}")
        run(tlm, demo, "finetune", ft_job,
            {"out": ft_out, "init": onednn_pre, "precision": "fp32", "cache_dir": os.path.join(out, "cache"),
             "auto_resume": "true"}, ft_out + ".log")
        with open(os.path.join(ft_out, "metrics.json")) as f:
            accs.append(json.load(f)["test"]["accuracy"])
    diffs = [100 * (x - y) for x, y in zip(accs, results["precisions"]["fp32"]["test_accuracy"])]
    m = statistics.mean(diffs)
    h = T_975_DF2 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) == 3 else float("nan")
    results["fp32-onednn-pretraining"] = {"valid_mlm_loss": onednn_loss, "test_accuracy": accs,
                                          "difference_points": diffs, "mean": m, "ci95": [m - h, m + h]}
    print(f"fp32 pre-trained with oneDNN's GEMM: valid MLM loss {onednn_loss:.4f}; fine-tuned - fp32: per seed "
          f"{[round(d, 2) for d in diffs]}, mean {m:+.2f}, 95% interval [{m - h:+.2f}, {m + h:+.2f}]", flush=True)

    f32, b16 = results["precisions"]["fp32"], results["precisions"]["bf16"]
    rel = (b16["valid_mlm_loss"] - f32["valid_mlm_loss"]) / f32["valid_mlm_loss"]
    diffs = [100 * (b - f) for b, f in zip(b16["test_accuracy"], f32["test_accuracy"])]
    mean = statistics.mean(diffs)
    half = T_975_DF2 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) == 3 else float("nan")
    results["valid_mlm_loss_relative_difference"] = rel
    results["accuracy_difference_points"] = {"per_seed": diffs, "mean": mean, "ci95": [mean - half, mean + half]}
    results["pretraining_within_1_percent"] = abs(rel) <= 0.01
    results["finetuning_ci_within_2_points"] = -2 <= mean - half and mean + half <= 2
    with open(os.path.join(out, "parity.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"validation MLM loss: bf16 {100 * rel:+.2f}% against fp32 (asked: within 1%): "
          f"{'held' if results['pretraining_within_1_percent'] else 'did not hold'}")
    print(f"test accuracy, bf16 - fp32 (points): per seed {[round(d, 2) for d in diffs]}, mean {mean:+.2f}, "
          f"95% interval [{mean - half:+.2f}, {mean + half:+.2f}] (asked: within +-2): "
          f"{'held' if results['finetuning_ci_within_2_points'] else 'did not hold'}")


if __name__ == "__main__":
    main()
