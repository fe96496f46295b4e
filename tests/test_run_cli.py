"""`mst-distill run` end to end on AV-MNIST-lite through the console script's module."""
import json
import numpy as np
import pytest
from conftest import cli


@pytest.mark.parametrize("target", ["m1", "m2"])
def test_mst_smoke_run_writes_the_run_directory(lite_root, tmp_path, target):
    out = tmp_path / "run"
    r = cli("run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--target", target, "--method", "mst",
            "--profile", "smoke", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "completed" and m["test"]["n"] == 40
    for key in ("accuracy", "macro_f1", "weighted_f1", "per_class_accuracy", "confusion_matrix"):
        assert key in m["test"]
    stages = [l.split(",")[0] for l in (out / "history.csv").read_text().splitlines()[1:]]
    assert stages == ["s1_cotrain", "s2_masks", "s3_distill"]
    assert (out / "routing.csv").exists() and [p.name for p in (out / "checkpoints").iterdir()] == ["final.pt"]
    with np.load(out / "masks.npz") as z:
        assert len(z.files) == 4 and all(z[k].shape[0] == 10 for k in z.files)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "mst" and cfg["target"] == target and cfg["epochs_s1"] == 1


@pytest.mark.parametrize("method", ["teacher", "student"])
def test_table_row_methods_complete(lite_root, tmp_path, method):
    r = cli("run", "--dataset", "avmnist-lite", "--data-root", lite_root, "--method", method, "--profile", "smoke",
            "--out", tmp_path / "run", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


def test_unknown_method_is_a_clear_error(tmp_path):
    r = cli("run", "--method", "nope", "--out", tmp_path / "run")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "argument --method: invalid choice: 'nope'" in lines[0], r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,value", [("--lr", "nan"), ("--lr", "0"), ("--temperature", "-1"), ("--w-kl", "inf")])
def test_bad_numbers_are_one_line(tmp_path, flag, value):
    r = cli("run", "--profile", "smoke", flag, value, "--out", tmp_path / "run", "--no-progress")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "expected a finite number" in lines[0], r.stderr
    assert lines[0].startswith(f"error: {flag[2:].replace('-', '_')}: ")


@pytest.mark.slow
def test_mst_quick_learns_well_above_chance(tmp_path):
    "The issue's acceptance run: quick profile, default 3,000-pair AV-MNIST-lite (generated into the cache)."
    out = tmp_path / "run"
    r = cli("run", "--dataset", "avmnist-lite", "--target", "m1", "--method", "mst", "--profile", "quick",
            "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "completed"
    assert m["test"]["accuracy"] > 0.4, m["test"]["accuracy"]  # chance is 0.1
