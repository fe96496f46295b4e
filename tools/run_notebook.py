"""Re-run notebooks in place so their stored outputs are current (`make outputs NBS="nbs/07_trainer.ipynb ..."`).

Log lines and warnings go to stderr, and stored outputs keep neither: stderr streams are dropped. A notebook whose
remaining outputs still name a temporary or home folder is left unchanged and reported, so no machine path is stored.
`#| slow` cells are skipped, as `nbdev_test` skips them, and keep their outputs; `--slow` runs them too.
"""
import os, re, sys, tempfile
from pathlib import Path
import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

MACHINE_PATH = re.compile(r"(/tmp/|/home/|/root/|/work/)")


def is_slow(cell) -> bool: return cell.cell_type == "code" and bool(re.search(r"^#\|\s*slow\b", cell.source, flags=re.M))


def rerun(path: Path, slow: bool = False, timeout: int = 1800) -> list[str]:
    "Execute `path` in its folder, drop stderr outputs; return the problems (empty: the notebook was rewritten)."
    if not path.is_file(): return [f"{path}: no such notebook"]
    nb = nbformat.read(path, as_version=4)
    skipped = {i: (c.source, c.outputs) for i, c in enumerate(nb.cells) if is_slow(c) and not slow}
    for i in skipped: nb.cells[i].source = ""
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(path.parent)}})
    for i, (source, outputs) in skipped.items(): nb.cells[i].source, nb.cells[i].outputs = source, outputs
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or i in skipped: continue
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        for o in cell.outputs:
            text = o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
            if MACHINE_PATH.search(text): problems.append(f"{path}: cell {i} stores a machine path: {MACHINE_PATH.search(text).group(0)}")
    if not problems:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.partial"); os.close(fd)
        nbformat.write(nb, tmp); os.replace(tmp, path)
    return problems


if __name__ == "__main__":
    args = sys.argv[1:]
    failed = [p for arg in args if arg != "--slow" for p in rerun(Path(arg), slow="--slow" in args)]
    for line in failed: print(f"error: {line}", file=sys.stderr)
    sys.exit(1 if failed else 0)
