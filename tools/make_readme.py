"""README.md from nbs/index.ipynb without quarto: markdown cells as they are, visible code cells as python blocks,
cells marked `#| hide` left out. Nothing is executed."""
import re, sys
from pathlib import Path
import nbformat

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
nb = nbformat.read(src, as_version=4)
parts = ["<!-- generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->"]
for cell in nb.cells:
    text = cell.source.strip()
    if not text: continue
    if cell.cell_type == "markdown": parts.append(text)
    elif not re.search(r"^#\|\s*hide\b", text, re.M):
        parts.append("```python\n" + "\n".join(l for l in text.splitlines() if not l.startswith("#|")) + "\n```")
tmp = dst.with_suffix(".tmp")
tmp.write_text("\n\n".join(parts) + "\n")
tmp.replace(dst)
