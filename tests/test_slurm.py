"""`mst-distill batch --executor slurm` against a real Slurm: a one-node cluster (munged, slurmctld, slurmd from
Debian's packages) started on localhost by the fixture, with a configuration written here, and stopped by PID.
A task cancelled with scancel while it runs is recorded as cancelled; the same command run again runs only that
run, and the table and the run records equal those of an uninterrupted local batch."""
import getpass, json, os, re, shutil, signal, socket, subprocess, time
from pathlib import Path
import pytest
from conftest import CLI, cli, statuses, completed_runs

# the programs `make sysdeps-slurm` installs: one list, the Makefile's
DAEMONS = re.search(r"^SLURM_BINS := (.+)$", (Path(__file__).parents[1] / "Makefile").read_text(), re.M).group(1).split()


def free_ports(n: int) -> list[int]:
    "`n` distinct free ports (all bound at once, so none is handed out twice)."
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks: s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks: s.close()


def slurm_conf(d: Path, host: str) -> str:
    "A minimal one-node configuration: no accounting, no cgroups (a container has no systemd), every file under `d`."
    user = getpass.getuser()
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
    ctld_port, slurmd_port = free_ports(2)
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
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
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
        for pid_file in reversed(pids): stop(pid_file)


def stop(pid_file: Path, wait_s: float = 10) -> None:
    "SIGTERM the daemon whose PID the file holds; SIGKILL it if it is still there after `wait_s` seconds."
    try: pid = int(pid_file.read_text())
    except (OSError, ValueError): return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try: os.kill(pid, sig)
        except ProcessLookupError: return
        deadline = time.time() + wait_s
        while time.time() < deadline:
            try: os.kill(pid, 0)
            except ProcessLookupError: return
            time.sleep(0.2)


@pytest.mark.xdist_group("smoke_batch")  # shares the session fixture smoke_batch
def test_slurm_batch_cancelled_task_resumes_to_the_same_table(slurm, smoke_batch, tmp_path, monkeypatch):
    from mst_distill.batch import slurm_queue
    for k, v in slurm.items(): monkeypatch.setenv(k, v)
    manifest, whole = smoke_batch
    out = tmp_path / "slurm"
    flags = ["--executor", "slurm", "--cpus-per-task", "1", "--mem-gb", "1", "--out", str(out), "--no-progress"]
    mst = "avmnist-lite/mst-m1-seed0"
    p = subprocess.Popen([*CLI, "batch", str(manifest), *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, checkpoint = time.time() + 300, out / mst / "checkpoints" / "last.pt"
        while time.time() < deadline and p.poll() is None and not checkpoint.exists(): time.sleep(0.2)
        assert p.poll() is None and checkpoint.exists(), "MST-Distill's task never wrote a checkpoint"
        job = json.loads((out / "slurm.json").read_text())[mst]
        assert slurm_queue().get(job) == "RUNNING"
        status = cli("batch", "--status", out)
        assert status.returncode == 0 and [mst, "running"] in [l.split()[1::-1] for l in status.stdout.splitlines()], status.stdout
        subprocess.run(["scancel", job], check=True)  # cancelled after its first epoch: the rerun resumes it
        log, _ = p.communicate(timeout=600)
    finally: p.kill()
    assert p.returncode == 1, log[-3000:]  # a cancelled task: the batch says so
    first = statuses(out)
    assert first[mst]["status"] == "cancelled" and "run the same batch again" in first[mst]["error"]
    before = completed_runs(out)
    assert mst not in before and len(before) == 2, log[-3000:]

    r = cli("batch", manifest, *flags)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = statuses(out)
    assert {k for k, v in after.items() if v["status"].startswith("skipped")} == before and after[mst]["status"] == "completed"
    assert after[mst]["was"] == "interrupted"  # resumed from the checkpoint the cancelled task left

    for d in (whole, out): assert cli("tables", d).returncode == 0
    assert (whole / "tables/avmnist-lite-smoke.csv").read_text() == (out / "tables/avmnist-lite-smoke.csv").read_text()
    record = lambda d, run: json.loads((d / run / "metrics.json").read_text())["test"]
    assert all(record(whole, run) == record(out, run) for run in after), "a run's test metrics differ from the local batch's"
