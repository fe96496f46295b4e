"""Re-run notebooks in place so their stored outputs are current (`make outputs NBS="nbs/07_trainer.ipynb ..."`).

Log lines and warnings go to stderr, and stored outputs keep neither: stderr streams are dropped. A notebook whose
remaining outputs still name a temporary or home folder is left unchanged and reported, so no machine path is stored.
"""
import os, re, sys, tempfile
from pathlib import Path
import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

MACHINE_PATH = re.compile(r"(/tmp/|/home/|/root/|/work/)")


def rerun(path: Path, timeout: int = 1800) -> list[str]:
    "Execute `path` in its folder, drop stderr outputs; return the problems (empty: the notebook was rewritten)."
    nb = nbformat.read(path, as_version=4)
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(path.parent)}})
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code": continue
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        for o in cell.outputs:
            text = o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
            if MACHINE_PATH.search(text): problems.append(f"{path}: cell {i} stores a machine path: {MACHINE_PATH.search(text).group(0)}")
    if not problems:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.partial"); os.close(fd)
        nbformat.write(nb, tmp); os.replace(tmp, path)
    return problems


if __name__ == "__main__":
    failed = [p for arg in sys.argv[1:] for p in rerun(Path(arg))]
    for line in failed: print(f"error: {line}", file=sys.stderr)
    sys.exit(1 if failed else 0)
