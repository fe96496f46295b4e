import json, os, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "mst-distill")]  # the installed console script


@pytest.fixture(scope="session")
def lite_root(tmp_path_factory):
    "A 200-pair AV-MNIST-lite written by the CLI into a temporary folder (real MNIST images, real synthesised speech)."
    out = tmp_path_factory.mktemp("data") / "lite"
    r = subprocess.run([*CLI, "data", "avmnist-lite", "--n", "200", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def cli(*args, cwd=None, timeout=1800, env=None):
    "Run the mst-distill CLI in a subprocess (extra environment variables in `env`); returns the CompletedProcess."
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def write_manifest(path: Path, data_root, **changes) -> Path:
    import yaml
    m = {"datasets": ["avmnist-lite"], "targets": ["m1"], "methods": ["student", "kd", "mst"], "teachers": ["cm"],
         "seeds": [0, 1], "profile": "smoke", "overrides": {"avmnist-lite": {"data_root": str(data_root)}}}
    m.update(changes)
    path.write_text(yaml.safe_dump(m))
    return path


def statuses(runs_dir: Path) -> dict:
    "Run id -> its record in the batch summary (batch.json)."
    return {r["run"]: r for r in json.loads((runs_dir / "batch.json").read_text())["runs"]}


def completed_runs(runs_dir: Path) -> set:
    done = set()
    for m in runs_dir.glob("avmnist-lite/*/metrics.json"):
        if json.loads(m.read_text()).get("status") == "completed": done.add(f"avmnist-lite/{m.parent.name}")
    return done


@pytest.fixture(scope="session")
def smoke_batch(lite_root, tmp_path_factory):
    "Three smoke runs (plain student, KD, MST-Distill; one seed), run uninterrupted by the local executor: (manifest, runs dir)."
    d = tmp_path_factory.mktemp("smoke-batch")
    manifest, whole = write_manifest(d / "m.yaml", lite_root, seeds=[0]), d / "whole"
    r = cli("batch", manifest, "--workers", 2, "--out", whole, "--no-progress")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert all(v["status"] == "completed" for v in statuses(whole).values()) and len(statuses(whole)) == 3
    return manifest, whole


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (minutes of CPU training)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes of CPU training; run with `pytest --slow` (`make test-slow`)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"): return
    skip = pytest.mark.skip(reason="slow: run with --slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)
