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


@pytest.fixture(scope="module")
def uninterrupted(lite_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = cli(*common(lite_root, out))
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((out / "metrics.json").read_text()), (out / "history.csv").read_text()


@pytest.mark.parametrize("stage_name,stage_index", [("s2_masks", 1), ("s3_distill", 2)])
def test_sigkill_then_resume_matches_uninterrupted(lite_root, tmp_path, uninterrupted, stage_name, stage_index):
    out = tmp_path / "run"
    kill_after_row(common(lite_root, out), out / "history.csv", f"{stage_name},0,")
    ck = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ck["stage"] == stage_index and 1 <= ck["next_epoch"] < 3, (ck["stage"], ck["next_epoch"])  # killed mid-stage
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


def test_resume_with_a_different_config_is_refused(lite_root, tmp_path):
    out = tmp_path / "run"
    r = cli("run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", "student", "--profile", "smoke",
            "--out", out, "--no-progress")
    assert r.returncode == 0
    r = cli("run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", "student", "--profile", "smoke",
            "--out", out, "--no-progress", "--resume", "--lr", "0.5")
    assert r.returncode == 1 and "different config" in r.stderr and "lr" in r.stderr


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
