"""One run over two CPU processes (torchrun, DistributedDataParallel with gloo) against the same run in one process.

Tolerances, and why. With the global batch split into equal shards, DDP's averaged gradient of a per-sample mean loss
is the one-process gradient; only the order of floating-point sums differs (each shard summed apart, then averaged),
about 1e-7 relative per value (measured on the 2-core machine). So for KD, the plain student and MST-Distill's
co-training stage (cross-entropy and KL only, no batch statistics in LeNet5, ThreeLayerCNN-A or CNN-I) every logged
value must agree within 1e-4 relative. MST-Distill's mask stage (BatchNorm in the 2-d MaskNets) and its routed stage
(load balancing is a statistic of the batch) see one shard per process, as DDP does everywhere: their values may
differ by training noise, measured up to 2e-3 relative in this smoke run (stage 3's distillation term); they must
agree within 2e-2 relative, and the test accuracy within 2 of the 40 test samples.
"""
import csv, json, math, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from conftest import CLI, cli

TORCHRUN = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2", "--no-python", *CLI]
EXACT, NOISY = 1e-4, 2e-2


def torchrun_cmd(*args): return [*TORCHRUN, *map(str, args)]


def torchrun(*args, timeout=900):
    "`mst-distill ARGS` on two processes (one thread each, as torchrun sets by default)."
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(torchrun_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env)


def run_args(lite_root, out, method, target, *extra):
    return ["run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", method, "--target", target,
            "--profile", "smoke", "--out", out, "--no-progress", *extra]


def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f: return list(csv.DictReader(f))


def assert_close_histories(one, two, tolerance_of):
    "Every logged value of every epoch agrees within `tolerance_of(stage)` (relative); timings are left out."
    assert [(r["stage"], r["epoch"]) for r in one] == [(r["stage"], r["epoch"]) for r in two]
    for a, b in zip(one, two):
        for k, v in a.items():
            if k in ("stage", "epoch", "seconds") or v == "": continue
            assert math.isclose(float(v), float(b[k]), rel_tol=tolerance_of(a["stage"]), abs_tol=1e-6), (a["stage"], k, v, b[k])


def record(run_dir: Path) -> dict: return json.loads((run_dir / "metrics.json").read_text())


def compare(lite_root, tmp_path, method, target, tolerance_of, test_samples, *extra):
    one, two = tmp_path / "one" / "run", tmp_path / "two" / "run"
    r1 = cli(*run_args(lite_root, one, method, target, *extra), env={"OMP_NUM_THREADS": "1"})
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = torchrun(*run_args(lite_root, two, method, target, *extra))
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-3000:]
    assert r2.stdout.count("status: completed") == 1  # rank 0 reports, the other process stays quiet
    assert_close_histories(history(one), history(two), tolerance_of)
    a, b = record(one), record(two)
    assert (a["world_size"], b["world_size"], b["status"]) == (1, 2, "completed")
    assert abs(a["test"]["accuracy"] - b["test"]["accuracy"]) * a["test"]["n"] <= test_samples + 1e-9
    assert math.isclose(a["test"]["loss"], b["test"]["loss"], rel_tol=tolerance_of("test"))
    # one writer: the two-process run directory holds the same files as the one-process one (event file names aside)
    names = lambda d: sorted(p.name for p in d.iterdir() if not p.name.startswith("events.out"))
    assert names(one) == names(two)
    return a, b


def test_kd_on_two_processes_equals_one(lite_root, tmp_path):
    "KD and the multimodal teacher it trains first (a prerequisite trained under DDP too): the same values."
    _, b = compare(lite_root, tmp_path, "kd", "m1", lambda stage: EXACT, 0, "--teacher", "mm")
    teacher = next(p for p in (tmp_path / "two" / "_teachers").iterdir() if p.is_dir())
    assert record(teacher)["world_size"] == 2


def test_mst_on_two_processes_matches_one(lite_root, tmp_path):
    "MST-Distill's three stages: co-training exactly, the stages with batch statistics within training noise."
    a, b = compare(lite_root, tmp_path, "mst", "m1", lambda stage: EXACT if stage == "s1_cotrain" else NOISY, 2)
    # the routing of the training samples was added up over both processes: every sample of an epoch counted once
    def routed(d):
        with open(d / "routing.csv") as f: return sum(int(r["count"]) for r in csv.DictReader(f) if r["split"] == "train")
    assert routed(tmp_path / "one" / "run") == routed(tmp_path / "two" / "run") == 120  # 120 training samples, 1 epoch


def descendants(pid: int) -> list[int]:
    "PIDs of every live process below `pid` (torchrun starts its workers in sessions of their own)."
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError: continue
        parent[int(stat.parent.name)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        here = todo.pop()
        kids = [c for c, p in parent.items() if p == here]
        out += kids; todo += kids
    return out


def kill_after_first_row(cmd, run_dir: Path, timeout=600):
    "Start `cmd` and SIGKILL it with every process below it (as a job scheduler would) once history.csv has its first row."
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    t0, hist = time.time(), run_dir / "history.csv"
    while time.time() - t0 < timeout:
        if hist.exists() and len(hist.read_text().splitlines()) >= 2:
            for pid in [p.pid, *descendants(p.pid)]:
                try: os.kill(pid, signal.SIGKILL)
                except ProcessLookupError: pass
            p.wait(); return
        if p.poll() is not None: raise AssertionError(f"run ended (rc {p.returncode}) before its first epoch was recorded")
        time.sleep(0.01)
    p.kill(); raise AssertionError("timed out")


@pytest.fixture(scope="module")
def uninterrupted_student(lite_root, tmp_path_factory):
    "The plain audio student, 2 smoke epochs, in one process without interruption."
    out = tmp_path_factory.mktemp("ddp-ref") / "run"
    r = cli(*run_args(lite_root, out, "student", "m2", "--epochs", "2"), env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.mark.xdist_group("ddp-resume")  # both share the uninterrupted run
@pytest.mark.parametrize("first,then", [("two", "one"), ("one", "two")])
def test_checkpoint_resumes_across_process_counts(lite_root, tmp_path, uninterrupted_student, first, then):
    "Killed after its first epoch on one set-up, resumed on the other: the uninterrupted run's values."
    out = tmp_path / "run"
    args = run_args(lite_root, out, "student", "m2", "--epochs", "2")
    kill_after_first_row(torchrun_cmd(*args) if first == "two" else [*CLI, *map(str, args)], out)
    ck = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ck["next_epoch"] == 1 and not (out / "metrics.json").exists()  # killed mid-run, after a checkpoint
    r = torchrun(*args, "--resume") if then == "two" else cli(*args, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert_close_histories(history(uninterrupted_student), history(out), lambda stage: EXACT)
    a, b = record(uninterrupted_student), record(out)
    assert b["world_size"] == (2 if then == "two" else 1) and a["test"]["accuracy"] == b["test"]["accuracy"]
    assert math.isclose(a["test"]["loss"], b["test"]["loss"], rel_tol=EXACT)


def test_a_bad_setting_fails_on_every_process(lite_root, tmp_path):
    "A refused run under torchrun: a non-zero exit, the one clear line of each process that reports before torchrun stops it, nothing written."
    out = tmp_path / "run"
    r = torchrun(*run_args(lite_root, out, "student", "m2", "--k", "9"))
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.startswith("error: [rank ")]
    assert 1 <= len(lines) <= 2, r.stderr[-3000:]
    assert all(l.split("] ", 1)[1] == "k: pool 'all' with mask_layer_num 2 has 4 experts, got k=9" for l in lines), lines
    assert not out.exists()


def _crd_step(r, world, init_file, out):
    "One CRD memory step on process `r` of `world` (gloo), its share of a global batch of 8; saves its banks."
    import torch.distributed as dist
    from mst_distill.baselines import ContrastMemory
    from mst_distill.distributed import shard
    if world > 1: dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=world)
    torch.manual_seed(0)  # the same memory, embeddings and features on every process, as a seeded run has
    labels = torch.arange(16) % 4
    mem = ContrastMemory(8, 8, labels, dim=4, k=3)
    fs, ft = torch.randn(16, 8), torch.randn(16, 8)
    mine = shard(torch.arange(8), world, r)
    mem(fs[mine], ft[mine], labels[mine], mine)
    torch.save({k: v for k, v in mem.state_dict().items() if k in ("memory_s", "memory_t", "seen", "z")}, out / f"{world}-{r}.pt")
    if world > 1: dist.destroy_process_group()


def test_crd_memory_banks_agree_across_processes(tmp_path):
    "Two processes that each see half a batch end with the same banks, and the banks equal one process's on the whole batch."
    import torch.multiprocessing as mp
    mp.spawn(_crd_step, args=(2, tmp_path / "init", tmp_path), nprocs=2)
    _crd_step(0, 1, None, tmp_path)
    a, b, one = (torch.load(tmp_path / f"{n}.pt") for n in ("2-0", "2-1", "1-0"))
    for k in a: assert torch.equal(a[k], b[k]), k  # z too: the mean over both shards' first batch
    assert a["seen"][:8].all() and not a["seen"][8:].any()  # every sample of the global batch, from either process
    for k in ("memory_s", "memory_t"):
        assert torch.allclose(a[k], one[k], atol=1e-6), k  # each row updated from its own sample, wherever it was


def _every_method():
    from mst_distill.registry import method_names, method_entry
    return [(m, (method_entry(m).teachers or ("mm",))[-1]) for m in method_names()]


@pytest.mark.slow
@pytest.mark.parametrize("method,teacher", _every_method())
def test_every_method_completes_under_torchrun(lite_root, tmp_path, method, teacher):
    "Every registered method (with its last accepted teacher) trains to a completed record on two processes."
    out = tmp_path / "run"
    r = torchrun(*run_args(lite_root, out, method, "m2", "--teacher", teacher))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (record(out)["status"], record(out)["world_size"]) == ("completed", 2)
