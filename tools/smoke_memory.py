"""Peak memory of each data set's `smoke` run of MST-Distill on its fixture, as a user would start it.

    .venv/bin/python tools/smoke_memory.py [DATASET ...] [--alongside TEXT]      (default: all registered)

For each data set: write the fixture (`mst-distill data fixtures`, default size), run
`mst-distill run --dataset D --data-root FIXTURE --method mst --profile smoke` in a child process, and read that
child's peak resident memory from the kernel (`os.wait4`, ru_maxrss); AV-MNIST-lite has no fixture, its run uses
the generated data set. Prints one line per data set and writes nbs/measurements/smoke_memory.csv (the data set
notebooks read it). One run at a time: measure on a quiet machine.
"""
import argparse, csv, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

from mst_distill.registry import dataset_names, dataset_entry

DATASETS = dataset_names()  # every registered data set
OUT = Path(__file__).resolve().parents[1] / "nbs" / "measurements" / "smoke_memory.csv"
CLI = [str(Path(sys.executable).with_name("mst-distill"))]  # the venv's console script

def measure(dataset: str, work: Path, alongside: str) -> dict:
    "Write `dataset`'s fixture, run its smoke MST-Distill, and return the figures of that run."
    root = []
    if dataset_entry(dataset).fixture is not None:  # else the run generates (or finds in the cache) its own data
        subprocess.run(CLI + ["data", "fixtures", dataset, "--out", str(work / "data")], check=True,
                       stdout=subprocess.DEVNULL)
        root = ["--data-root", str(work / "data")]
    cmd = CLI + ["run", "--dataset", dataset, *root, "--method", "mst", "--profile", "smoke",
                 "--out", str(work / "run"), "--no-progress"]
    t0 = time.time()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.time() - t0
    code = os.waitstatus_to_exitcode(status)
    last = out.strip().splitlines()[-1].split(" -> ")[0] if out.strip() else ""  # without the temporary run path
    return dict(dataset=dataset, exit_code=code, peak_rss_gib=round(usage.ru_maxrss / 2**20, 2),
                wall_s=round(seconds), machine=f"{os.cpu_count()} cores, {platform.machine()}", alongside=alongside,
                last_line=last[:200])

def main(names: list[str], alongside: str) -> None:
    rows = []
    for dataset in names or DATASETS:
        if dataset not in DATASETS: sys.exit(f"smoke_memory: unknown data set '{dataset}' (known: {', '.join(DATASETS)})")
        with tempfile.TemporaryDirectory() as d:
            row = measure(dataset, Path(d), alongside)
        print(f"{row['dataset']:>14}: exit {row['exit_code']}, peak {row['peak_rss_gib']:.2f} GiB, {row['wall_s']} s"
              + ("" if row["exit_code"] == 0 else f" ({row['last_line']})"),
              flush=True)
        rows.append(row)
    old = {r["dataset"]: r for r in csv.DictReader(OUT.open())} if OUT.exists() else {}
    old.update({r["dataset"]: {k: str(v) for k, v in r.items()} for r in rows})
    tmp = OUT.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(old.values())
    tmp.replace(OUT)

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", help=f"some of {', '.join(DATASETS)} (default: all)")
    ap.add_argument("--alongside", default="nothing", help="what else ran on the machine meanwhile (kept in the CSV)")
    args = ap.parse_args()
    main(args.datasets, args.alongside)
