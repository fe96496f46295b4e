"""Resume after SIGKILL gives exactly the uninterrupted result; NaN losses and unwritable outputs fail clearly."""
import json, os, signal, subprocess, time
import pytest
import torch
from conftest import CLI, cli


def common(lite_root, out):
    return ["run", "--dataset", "avmnist-lite", "--data-root", str(lite_root), "--target", "m2", "--method", "mst",
            "--profile", "smoke", "--epochs-s1", "1", "--epochs-s2", "3", "--epochs", "3", "--out", str(out), "--no-progress"]


def kill_after_row(args, history, prefix, timeout=600):
    "Start the CLI, SIGKILL it as soon as history.csv has a row starting with `prefix`."
    p = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if history.exists() and any(l.startswith(prefix) for l in history.read_text().splitlines()):
            os.kill(p.pid, signal.SIGKILL); p.wait(); return
        if p.poll() is not None: raise AssertionError(f"run ended (rc {p.returncode}) before reaching {prefix}")
        time.sleep(0.01)
    p.kill(); raise AssertionError("timed out")


@pytest.fixture(scope="session")  # session: built once even when the worker runs other modules' tests in between
def uninterrupted(lite_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = cli(*common(lite_root, out))
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((out / "metrics.json").read_text()), (out / "history.csv").read_text()


@pytest.mark.xdist_group("uninterrupted")
def test_sigkill_then_resume_matches_uninterrupted(lite_root, tmp_path, uninterrupted):
    "Killed in stage 2, resumed and killed again in stage 3 (the expert cache refilled), resumed to the end: bit for bit."
    out = tmp_path / "run"
    for stage_name, stage_index, resume in (("s2_masks", 1, []), ("s3_distill", 2, ["--resume"])):
        kill_after_row([*common(lite_root, out), *resume], out / "history.csv", f"{stage_name},0,")
        ck = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
        assert ck["stage"] == stage_index and 1 <= ck["next_epoch"] < 3, (stage_name, ck["stage"], ck["next_epoch"])  # mid-stage
        assert not (out / "metrics.json").exists()
    r = cli(*common(lite_root, out), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    resumed = json.loads((out / "metrics.json").read_text())
    ref, ref_history = uninterrupted
    assert resumed["status"] == "completed"
    assert resumed["test"] == ref["test"] and resumed["val"] == ref["val"]
    assert resumed["routing_test"] == ref["routing_test"]
    cols = ref_history.splitlines()[0].split(",")
    drop = cols.index("seconds")
    rows = lambda text: [[c for i, c in enumerate(l.split(",")) if i != drop] for l in text.splitlines()]
    assert rows((out / "history.csv").read_text()) == rows(ref_history)


def student(lite_root, out, *extra):
    return ["run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", "student", "--profile", "smoke",
            "--out", out, "--no-progress", *extra]


def snapshot(run_dir):
    "Every file of a run directory with its bytes."
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_refused_runs_leave_a_completed_record_byte_identical(lite_root, tmp_path):
    out = tmp_path / "run"
    assert cli(*student(lite_root, out)).returncode == 0
    before = snapshot(out)
    for extra, says in ((["--resume", "--lr", "0.5"], "different config"), (["--resume", "--seed", "3"], "different config"),
                        ([], "holds a completed run")):
        r = cli(*student(lite_root, out, *extra))
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.returncode == 1 and len(lines) == 1 and says in lines[0], r.stderr
        assert snapshot(out) == before, extra
    r = cli(*student(lite_root, out, "--resume"))  # the same config: nothing to resume, the record is returned
    assert r.returncode == 0 and "already completed" in r.stderr and snapshot(out) == before


def test_a_second_run_into_the_same_directory_is_refused(lite_root, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([*CLI, *map(str, student(lite_root, out, "--epochs", "3"))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    holder, t0 = out / ".lock.holder", time.time()
    while not holder.exists() and first.poll() is None and time.time() - t0 < 120: time.sleep(0.01)
    assert holder.exists(), "the first run never took the lock"
    # paused, the first run keeps its lock however long the second one takes to start on a loaded machine
    os.kill(first.pid, signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first run ended before the second could start"
        second = cli(*student(lite_root, out, "--seed", "1"))
    finally: os.kill(first.pid, signal.SIGCONT)
    lines = [l for l in second.stderr.splitlines() if l.strip()]
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    assert f"{out}: in use by another run (host " in lines[0] and f"PID {first.pid})" in lines[0]
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["status"] == "completed" and rec["seed"] == 0  # the first run's record, complete
    assert json.loads((out / "config.json").read_text())["seed"] == 0
    assert (out / "run.log").read_text().count(" on PairedData(") == 1  # the refused run wrote no line


def test_nan_loss_stops_the_run_as_failed(lite_root, tmp_path):
    out = tmp_path / "run"
    r = cli("run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", "student", "--profile", "smoke",
            "--lr", "1e30", "--epochs", "3", "--out", out, "--no-progress")
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "non-finite loss" in errors[0] and "Traceback" not in r.stderr, r.stderr
    assert "Warning" not in r.stderr, r.stderr
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["status"] == "failed" and "non-finite loss" in rec["error"]


def test_unwritable_output_is_a_clear_error(lite_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = cli("run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", "student", "--profile", "smoke",
            "--out", blocker / "run", "--no-progress")
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and str(blocker / "run") in lines[0] and "cannot create or write" in lines[0], r.stderr
