"""MST-Distill's stage 3 with and without the expert cache (`expert_cache`, 08_mst), in the same run of this script.

    .venv/bin/python tools/expert_cache.py [--targets m1 m2] [--seed 0] [--threads 1]

For each target, on AV-MNIST-lite (2,000 pairs, cached) with the lite profile and `--shared-stages`:
  1. a first run trains the shared stages 1-2 (and its own stage 3); not compared, it only fills the stage cache;
  2. the same run again, stages 1-2 read from that cache, with the expert cache (the default);
  3. the same again with `--no-expert-cache`: every expert recomputed every step (the reference's way).
It prints the wall time of 2 and 3 (stage 3, its validation and test, and the start-up), their ratio, and both test
accuracies and stage-3 histories, which must agree: the cache changes where the logits come from, not their values.
The targets run one after the other, each in one process of `--threads` threads (1: as a batch worker runs).
Run it on a quiet machine. Nothing is written outside a temporary folder.
"""
import argparse, csv, json, os, subprocess, sys, tempfile, time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed_run(out, target, a, *extra):
    cmd = [str(BIN / "mst-distill"), "run", "--dataset", "avmnist-lite", "--method", "mst", "--target", target,
           "--profile", "lite", "--seed", str(a.seed), "--shared-stages", "--out", str(out), "--no-progress",
           "--no-tensorboard", *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), PYTHONUNBUFFERED="1")
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.time() - t0
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[1:])} failed (rc {p.returncode}): {(p.stderr.strip().splitlines() or [''])[-1]}")
    return wall, json.loads((out / "metrics.json").read_text()), list(csv.DictReader(open(out / "history.csv")))


def largest_difference(h1, h2):
    "Largest relative difference between two histories' numeric values (same rows and columns; wall times left out)."
    worst = 0.0
    for r1, r2 in zip(h1, h2, strict=True):
        for k, v in r1.items():
            if k == "seconds": continue
            try: x, y = float(v), float(r2[k])
            except (TypeError, ValueError): continue
            worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", nargs="+", default=["m1", "m2"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    subprocess.run([str(BIN / "mst-distill"), "data", "avmnist-lite", "--n", "2000", "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    rows = []
    with tempfile.TemporaryDirectory(prefix="expert-cache-") as tmp:
        for t in a.targets:
            root = Path(tmp) / t
            first, _, _ = timed_run(root / "first", t, a)
            on, m_on, h_on = timed_run(root / "cache", t, a)
            off, m_off, h_off = timed_run(root / "no-cache", t, a, "--no-expert-cache")
            rows.append((t, first, on, off, m_on["test"]["accuracy"], m_off["test"]["accuracy"], largest_difference(h_on, h_off)))
    print(f"MST-Distill stage 3, lite profile, AV-MNIST-lite 2,000 pairs, seed {a.seed}, CPU, {a.threads} thread(s), "
          f"{os.cpu_count()} cores")
    print("| target | first run (trains stages 1-2) s | stage-3 run, cache s | stage-3 run, no cache s | no cache / cache "
          "| test acc, cache | test acc, no cache | largest history difference |")
    print("|---|---|---|---|---|---|---|---|")
    for t, first, on, off, acc_on, acc_off, diff in rows:
        print(f"| {t} | {first:.0f} | {on:.1f} | {off:.1f} | {off / on:.2f}x | {acc_on:.4f} | {acc_off:.4f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
