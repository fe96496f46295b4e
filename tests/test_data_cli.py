"""`mst-distill data avmnist-lite`: layout, shapes, balance, determinism; bad files give one clear error line."""
import json, time
import numpy as np
import pytest
from conftest import cli


def test_generate_3000_has_avmnist_layout(tmp_path):
    t0 = time.time()
    r = cli("data", "avmnist-lite", "--n", "3000", "--out", tmp_path / "lite", "--no-progress")
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stderr
    root = tmp_path / "lite"
    img = [np.load(root / f"avmnist/image/{p}_data.npy") for p in ("train", "test")]
    aud = [np.load(root / f"avmnist/audio/{p}_data.npy") for p in ("train", "test")]
    lab = [np.load(root / f"avmnist/{p}_labels.npy") for p in ("train", "test")]
    assert all(a.shape[1:] == (784,) and a.dtype == np.float32 for a in img)
    assert all(a.shape[1:] == (112, 112) and a.dtype == np.float32 for a in aud)
    assert sum(len(a) for a in img) == sum(len(a) for a in aud) == sum(len(a) for a in lab) == 3000
    assert np.bincount(np.concatenate(lab)).tolist() == [300] * 10
    header = (root / "metadata/AV-MNIST_indices.csv").read_text().splitlines()[0]
    assert header.split(",") == [f"group_{i}" for i in range(20)]
    man = json.loads((root / "manifest.json").read_text())
    assert man["params"]["n"] == 3000 and man["tool_versions"]["espeak-ng"] and man["tool_versions"]["flite"]
    print(f"generated 3000 pairs in {elapsed:.1f}s")


def test_generation_is_deterministic(lite_root, tmp_path):
    r = cli("data", "avmnist-lite", "--n", "200", "--out", tmp_path / "again", "--no-progress")
    assert r.returncode == 0, r.stderr
    for f in ("avmnist/audio/train_data.npy", "avmnist/image/train_data.npy", "avmnist/test_labels.npy"):
        assert np.array_equal(np.load(lite_root / f), np.load(tmp_path / "again" / f)), f


def test_pip_fallback_without_system_synthesisers(tmp_path):
    "With MST_DISTILL_TTS=pip (as when espeak-ng/flite are missing) the espeakng-loader wheel speaks the digits."
    r = cli("data", "avmnist-lite", "--n", "100", "--out", tmp_path / "lite", "--no-progress", env={"MST_DISTILL_TTS": "pip"})
    assert r.returncode == 0, r.stderr
    man = json.loads((tmp_path / "lite/manifest.json").read_text())
    assert man["tts_backend"] == "pip" and man["voices"] == 140 and "espeakng-loader" in man["audio_path"]
    aud = np.load(tmp_path / "lite/avmnist/audio/train_data.npy")
    assert aud.shape[1:] == (112, 112) and np.isfinite(aud).all() and aud.std() > 1


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


BAD_CASES = {
    "missing": (lambda r: (r / "avmnist/audio/test_data.npy").unlink(), "audio/test_data.npy", "not found"),
    "truncated": (lambda r: (r / "avmnist/image/train_data.npy").write_bytes(
        (r / "avmnist/image/train_data.npy").read_bytes()[:500]), "image/train_data.npy", "cannot read"),
    "wrong shape": (lambda r: np.save(r / "avmnist/audio/train_data.npy", np.zeros((5, 112, 100), np.float32)),
                    "audio/train_data.npy", "(N, 112, 112)"),
    "nan": (lambda r: np.save(r / "avmnist/image/test_data.npy",
                              np.full_like(np.load(r / "avmnist/image/test_data.npy"), np.nan)), "image/test_data.npy", "NaN"),
    "length mismatch": (lambda r: np.save(r / "avmnist/test_labels.npy", np.load(r / "avmnist/test_labels.npy")[:-1]),
                        "avmnist", "length mismatch"),
    "label range": (lambda r: np.save(r / "avmnist/train_labels.npy", np.load(r / "avmnist/train_labels.npy") + 5),
                    "labels", "0..9"),
    "float labels": (lambda r: np.save(r / "avmnist/train_labels.npy", np.load(r / "avmnist/train_labels.npy").astype(np.float32)),
                     "train_labels.npy", "dtype float32"),
    "split mismatch": (lambda r: (r / "metadata/AV-MNIST_indices.csv").write_text(
        "\n".join((r / "metadata/AV-MNIST_indices.csv").read_text().splitlines()[:-3]) + "\n"),
                       "AV-MNIST_indices.csv", "rows"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_files_give_one_clear_line(lite_root, tmp_path, case):
    spoil, names, what = BAD_CASES[case]
    root = _copy(lite_root, tmp_path / "bad")
    spoil(root)
    r = cli("run", "--dataset", "av-mnist", "--data-root", root, "--method", "student", "--profile", "smoke",
            "--out", tmp_path / "run", "--no-progress")
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and names in lines[0] and what in lines[0], lines[0]
    rec = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rec["status"] == "failed" and names in rec["error"]
