import os, subprocess, sys
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


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (minutes of CPU training)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes of CPU training; run with `pytest --slow` (`make test-slow`)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"): return
    skip = pytest.mark.skip(reason="slow: run with --slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)
