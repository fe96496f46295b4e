"""The experiment notebook runs under papermill with injected parameters (the `parameters` tag survives nbdev_clean)."""
import json, subprocess, sys
from pathlib import Path
from conftest import REPO


def test_papermill_injects_parameters(lite_root, tmp_path):
    out = tmp_path / "run"
    papermill = Path(sys.executable).parent / "papermill"
    r = subprocess.run([str(papermill), str(REPO / "nbs/experiments/av_mnist.ipynb"), str(tmp_path / "executed.ipynb"),
                        "-k", "python3", "-p", "data_root", str(lite_root), "-p", "target", "m2", "-p", "method", "student",
                        "-p", "out", str(out), "--cwd", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["target"] == "m2" and cfg["method"] == "student" and cfg["data_root"] == str(lite_root)
    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
