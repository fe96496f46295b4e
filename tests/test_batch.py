"""The batch runner through the CLI: a killed batch re-run completes only the missing runs and gives the same table;
a failing run is recorded and does not stop the batch; tables count completed runs only."""
import json, os, signal, subprocess, time
from pathlib import Path
import pytest
import yaml
from conftest import CLI, cli, write_manifest, statuses, completed_runs


@pytest.mark.xdist_group("smoke_batch")  # shares the session fixture smoke_batch
def test_killed_batch_resumes_with_the_same_table(smoke_batch, tmp_path):
    manifest, whole = smoke_batch  # the same three runs, uninterrupted
    killed = tmp_path / "killed"

    # the same batch, killed (the whole process group, as a closed terminal would) once a first run has completed
    p = subprocess.Popen([*CLI, "batch", str(manifest), "--workers", "2", "--out", str(killed), "--no-progress"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not completed_runs(killed) and time.time() < deadline and p.poll() is None: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    time.sleep(3)  # the papermill kernels notice that their worker is gone and exit
    before = completed_runs(killed)
    assert 1 <= len(before) < 3, before

    r = cli("batch", manifest, "--workers", 2, "--out", killed, "--no-progress")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    after = statuses(killed)
    assert {k for k, v in after.items() if v["status"].startswith("skipped")} == before
    assert all(v["status"] == "completed" for k, v in after.items() if k not in before)

    for d in (whole, killed): assert cli("tables", d).returncode == 0
    table = lambda d: (d / "tables" / "avmnist-lite-smoke.csv").read_text()
    assert table(whole) == table(killed)
    assert "MST-Distill" in table(whole) and "KD (CM)" in table(whole)


def test_failed_run_is_recorded_and_left_out_of_the_tables(lite_root, tmp_path):
    # a learning rate of 1e30 makes MST-Distill's loss NaN: the run fails, the student still runs
    manifest = write_manifest(tmp_path / "m.yaml", lite_root, methods=["mst", "student"], seeds=[0],
                              overrides={"avmnist-lite": {"data_root": str(lite_root)}, "mst": {"lr": 1e30}})
    out = tmp_path / "runs"
    r = cli("batch", manifest, "--workers", 1, "--out", out, "--no-progress")
    assert r.returncode == 1  # the batch says that something failed, after running everything
    runs = statuses(out)
    assert runs["avmnist-lite/mst-m1-seed0"]["status"] == "failed" and "non-finite" in runs["avmnist-lite/mst-m1-seed0"]["error"]
    assert runs["avmnist-lite/student-m1-seed0"]["status"] == "completed"
    summary = (out / "batch.md").read_text()
    assert "## Failed" in summary and "avmnist-lite/mst-m1-seed0" in summary.split("## Failed")[1].split("##")[0]
    assert json.loads((out / "avmnist-lite/mst-m1-seed0/metrics.json").read_text())["status"] == "failed"
    assert (out / "avmnist-lite/mst-m1-seed0/experiment.ipynb").exists()

    t = cli("tables", out)
    assert t.returncode == 0 and "1 failed" in t.stdout
    table = (out / "tables" / "avmnist-lite-smoke.md").read_text()
    assert "w/o KD" in table and "MST-Distill" not in table


def test_bad_manifest_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [avmnist-lite]\nmethods: [kd, mts]\nseeds: [0]\n")
    r = cli("batch", bad, "--out", tmp_path / "runs")
    assert r.returncode == 1 and str(bad) in r.stderr and "methods: unknown value(s) ['mts']" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_ablation_manifest_resumes_and_its_table_is_the_records(lite_root, tmp_path):
    "Three MST-Distill variants sharing stages 1-2: killed, re-run, and the ablation table is the records' mean and std."
    variants = {"full": {}, "no-routing": {"router": "uniform"}, "pool-cm": {"pool": "cm"}}
    manifest = write_manifest(tmp_path / "a.yaml", lite_root, methods=["mst"], variants=variants,
                              overrides={"avmnist-lite": {"data_root": str(lite_root), "shared_stages": True}})
    out = tmp_path / "ablation"
    p = subprocess.Popen([*CLI, "batch", str(manifest), "--workers", "2", "--out", str(out), "--no-progress"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not completed_runs(out) and time.time() < deadline and p.poll() is None: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    time.sleep(3)
    before = completed_runs(out)
    assert 1 <= len(before) < 6, before
    r = cli("batch", manifest, "--workers", 2, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    after = statuses(out)
    assert len(after) == 6 and {k for k, v in after.items() if v["status"].startswith("skipped")} == before
    # one shared stages-1-2 run per seed, whatever the kill interrupted
    shared = [d for d in (out / "avmnist-lite" / "_mst_stages").iterdir() if d.is_dir()]
    assert len(shared) == 2 and all(json.loads((d / "metrics.json").read_text())["status"] == "completed" for d in shared)

    assert cli("tables", out).returncode == 0
    import pandas as pd
    ab = pd.read_csv(out / "tables" / "avmnist-lite-smoke-ablation.csv")
    assert list(ab.variant) == ["full", "no-routing", "pool-cm"] and ab.row[0] == "full (full method)"
    for row in ab.itertuples():
        acc = [100 * json.loads((out / "avmnist-lite" / f"mst-{row.variant}-m1-seed{s}" / "metrics.json").read_text())["test"]["accuracy"]
               for s in (0, 1)]
        assert row.n == 2 and abs(row.mean - sum(acc) / 2) < 1e-9 and abs(row.std - abs(acc[0] - acc[1]) / 2 ** 0.5) < 1e-9
    assert not (out / "tables" / "avmnist-lite-smoke.csv").exists()  # no main-table run in an analysis batch
    assert (out / "tables" / "avmnist-lite-smoke-routing-epochs.png").exists()


def test_the_analysis_batch_reuses_what_make_tables_trains():
    "`make tables` (lite-core) trains the six shared MST-Distill stages 1-2 and the teachers the analysis batch reads."
    from mst_distill.batch import load_manifest, expand
    from mst_distill.mst import shared_stages_config
    from mst_distill.baselines import teacher_run_config
    root = Path(__file__).parents[1] / "manifests"
    runs = {name: expand(load_manifest(root / f"{name}.yaml"))[0] for name in ("lite-core", "lite", "ablation-lite")}
    mst = lambda rs: [r.config("runs/lite") for r in rs if r.method == "mst" and r.variant in ("", "full")]
    assert all(c.shared_stages for name in runs for c in mst(runs[name]))  # they train (or read) the shared run
    stages = lambda rs: {shared_stages_config(c).out for c in mst(rs)}
    assert len(stages(runs["lite-core"])) == 6 and stages(runs["lite-core"]) == stages(runs["lite"]) == stages(runs["ablation-lite"])
    no_stage1 = [r.config("runs/lite") for r in runs["ablation-lite"] if r.variant == "no-stage1"]
    kd = [r.config("runs/lite") for r in runs["lite-core"] if r.method == "kd"]
    teachers = lambda cfgs: {teacher_run_config(c, kind).out for c in cfgs for kind in ("mm", "cm")}
    assert len(no_stage1) == 6 and teachers(no_stage1) <= teachers(kd)
