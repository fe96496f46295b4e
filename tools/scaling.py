"""Where the cores go: one run in one process, the same run over N processes (torchrun, DDP), or N runs at once.

    .venv/bin/python tools/scaling.py [--procs 2] [--epochs 2] [--method student] [--target m2] [--device cpu]

Trains the same lite-profile run (AV-MNIST-lite, 2,000 pairs, cached) three ways, one after the other, and prints
wall-clock times and ratios against the first:
  1. one run, one process using every thread (`OMP_NUM_THREADS=procs`);
  2. the same run under `torchrun --nproc_per_node procs` (DDP, one thread each; the global batch stays 32);
  3. `procs` runs at once (seeds 0..procs-1), one thread each: what `mst-distill batch --workers procs` does.
Run it on a quiet machine: it uses every core it is given. Nothing is written outside a temporary folder.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

BIN = Path(sys.executable).parent


def run_args(out, seed, a):
    return ["run", "--dataset", "avmnist-lite", "--method", a.method, "--target", a.target, "--profile", "lite",
            "--epochs", str(a.epochs), "--seed", str(seed), "--device", a.device, "--out", str(out), "--no-progress",
            "--no-tensorboard"]


def start(cmd, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def wait_all(procs, outs, what):
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0: sys.exit(f"error: {what} failed (rc {p.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
    return [json.loads((o / "metrics.json").read_text()) for o in outs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=os.cpu_count())
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--method", default="student")
    ap.add_argument("--target", default="m2")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    cli = [str(BIN / "mst-distill")]
    subprocess.run([*cli, "data", "avmnist-lite", "--n", "2000", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        tmp = Path(tmp); rows = []
        t0 = time.time()
        one = wait_all([start([*cli, *run_args(tmp / "one", 0, a)], a.procs)], [tmp / "one"], "one process")[0]
        rows.append(("one run, 1 process", time.time() - t0, 1, one))
        t0 = time.time()
        ddp = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(a.procs), "--no-python", *cli, *run_args(tmp / "ddp", 0, a)]
        two = wait_all([start(ddp, 1)], [tmp / "ddp"], "torchrun")[0]
        rows.append((f"one run, torchrun {a.procs} processes", time.time() - t0, 1, two))
        t0 = time.time()
        outs = [tmp / f"seed{s}" for s in range(a.procs)]
        many = wait_all([start([*cli, *run_args(o, s, a)], 1) for s, o in enumerate(outs)], outs, "parallel runs")
        rows.append((f"{a.procs} runs at once, 1 thread each", time.time() - t0, a.procs, many[0]))
    base = rows[0][1]
    print(f"{a.method} -> {a.target}, lite profile, {a.epochs} epochs, 2,000 pairs, {a.device}, {os.cpu_count()} cores")
    print("| set-up | wall s | runs | s per run | runs per hour | vs one process |")
    print("|---|---|---|---|---|---|")
    for name, wall, n, m in rows:
        print(f"| {name} | {wall:.1f} | {n} | {wall / n:.1f} | {3600 * n / wall:.0f} | {base / (wall / n):.2f}x |")
    print(f"test accuracy, seed 0: one process {one['test']['accuracy']:.4f}, torchrun {two['test']['accuracy']:.4f}")


if __name__ == "__main__":
    main()
