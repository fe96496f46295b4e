"""`mst-distill batch --executor slurm` against a real Slurm: a one-node cluster (munged, slurmctld, slurmd from
Debian's packages) started on localhost by the fixture, with a configuration written here, and stopped by PID.
A task cancelled with scancel while it runs is recorded as cancelled; the same command run again runs only that
run, and the table and the run records equal those of an uninterrupted local batch."""
import getpass, json, os, shutil, signal, socket, subprocess, time
from pathlib import Path
import pytest
from conftest import CLI, cli, statuses, completed_runs

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def slurm_conf(d: Path, host: str) -> str:
    "A minimal one-node configuration: no accounting, no cgroups (a container has no systemd), every file under `d`."
    user = getpass.getuser()
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
    return f"""ClusterName=test
SlurmctldHost={host}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmdSpoolDir={d}/slurmd
StateSaveLocation={d}/state
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName={host} CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    "The environment variables (SLURM_CONF, PATH) that reach a running one-node Slurm; its daemons are stopped by their PIDs afterwards."
    missing = [d for d in DAEMONS if not shutil.which(d, path=os.environ["PATH"] + ":/usr/sbin:/sbin")]
    if missing:
        if os.environ.get("MST_DISTILL_REQUIRE_SLURM"): pytest.fail(f"Slurm is required here but {', '.join(missing)} are missing")
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing; Debian: slurmctld slurmd slurm-client munge)")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("slurmd", "state"): (d / sub).mkdir()
    (d / "munge.key").write_bytes(os.urandom(1024)); (d / "munge.key").chmod(0o600)
    host = socket.gethostname().split(".")[0]
    (d / "slurm.conf").write_text(slurm_conf(d, host))
    extra = {"SLURM_CONF": str(d / "slurm.conf"), "PATH": os.environ["PATH"] + ":/usr/sbin:/sbin"}
    env = dict(os.environ, **extra)
    start = lambda *cmd: subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=60)
    pids = []
    try:
        start("munged", "--force", f"--key-file={d}/munge.key", f"--socket={d}/munge.sock", f"--pid-file={d}/munged.pid",
              f"--log-file={d}/munged.log", f"--seed-file={d}/munge.seed")
        pids.append(d / "munged.pid")
        start("slurmctld", "-i"); pids.append(d / "slurmctld.pid")
        start("slurmd"); pids.append(d / "slurmd.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if r.stdout.strip() == "idle": break
            time.sleep(0.5)
        else: pytest.fail(f"the test cluster's node did not come up: {r.stdout}{r.stderr}")
        yield extra
    finally:  # no task outlives the test: cancel them all, then stop the daemons
        if len(pids) == 3: subprocess.run(["scancel", "-u", getpass.getuser()], env=env, capture_output=True, timeout=60)
        time.sleep(2 if len(pids) == 3 else 0)
        for pid_file in reversed(pids):
            try: os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (OSError, ValueError): pass
        time.sleep(2)


def job_state(slurm: dict, job: str) -> str:
    r = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], env=dict(os.environ, **slurm), capture_output=True, text=True)
    return dict(line.split() for line in r.stdout.splitlines()).get(job, "")


@pytest.mark.xdist_group("smoke_batch")  # shares the session fixture smoke_batch
def test_slurm_batch_cancelled_task_resumes_to_the_same_table(slurm, smoke_batch, tmp_path):
    manifest, whole = smoke_batch
    out = tmp_path / "slurm"
    flags = ["--executor", "slurm", "--cpus-per-task", "1", "--mem-gb", "1", "--out", str(out), "--no-progress"]
    p = subprocess.Popen([*CLI, "batch", str(manifest), *flags], env=dict(os.environ, **slurm), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mst = "avmnist-lite/mst-m1-seed0"
    deadline, running_since = time.time() + 300, None
    while time.time() < deadline and p.poll() is None:  # MST-Distill's task, a few seconds into its run
        jobs = json.loads((out / "slurm.json").read_text()) if (out / "slurm.json").exists() else {}
        if mst in jobs and job_state(slurm, jobs[mst]) == "RUNNING":
            running_since = running_since or time.time()
            if time.time() - running_since > 5: break
        time.sleep(0.5)
    assert p.poll() is None and running_since, "MST-Distill's task never ran"
    status = cli("batch", "--status", out, env=slurm)
    assert status.returncode == 0 and [mst, "running"] in [l.split()[1::-1] for l in status.stdout.splitlines()], status.stdout
    subprocess.run(["scancel", jobs[mst]], env=dict(os.environ, **slurm), check=True)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 1, log[-3000:]  # a cancelled task: the batch says so
    first = statuses(out)
    assert first[mst]["status"] == "cancelled" and "run the same batch again" in first[mst]["error"]
    before = completed_runs(out)
    assert mst not in before and len(before) == 2, log[-3000:]

    r = cli("batch", manifest, *flags, env=slurm)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = statuses(out)
    assert {k for k, v in after.items() if v["status"].startswith("skipped")} == before and after[mst]["status"] == "completed"

    for d in (whole, out): assert cli("tables", d).returncode == 0
    assert (whole / "tables/avmnist-lite-smoke.csv").read_text() == (out / "tables/avmnist-lite-smoke.csv").read_text()
    record = lambda d, run: json.loads((d / run / "metrics.json").read_text())["test"]
    assert all(record(whole, run) == record(out, run) for run in after), "a run's test metrics differ from the local batch's"
