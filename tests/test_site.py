"""The static HTML site of the rendered notebooks (gradedrel.site), and where the main job
puts it: site/, ignored by git."""
import subprocess

import nbformat
import pandas as pd

from gradedrel import site
from gradedrel.paths import REPO_ROOT


def test_a_page_per_notebook_and_an_index_with_the_claims(tmp_path):
    rendered, results, out = tmp_path / "rendered", tmp_path / "results", tmp_path / "site"
    rendered.mkdir()
    results.mkdir()
    for name, heading in (("02_agreement", "# 02 · Annotator agreement"), ("03_sweep", "# 03 · Threshold")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(heading + "\n\ntext"),
                                             nbformat.v4.new_code_cell("1 + 1", outputs=[
                                                 nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                                        execution_count=1)])])
        nbformat.write(nb, rendered / f"{name}.ipynb")
    pd.DataFrame({"claim": ["κ falls"], "verdict": ["supported"]}).to_csv(results / "02_claims.csv", index=False)
    out.mkdir()
    (out / "01_gone.html").write_text("stale")
    pages = site.build(rendered, out, results)
    assert sorted(p.name for p in pages) == ["02_agreement.html", "03_sweep.html", "index.html"]
    assert not (out / "01_gone.html").exists()                     # a notebook no longer rendered
    index = (out / "index.html").read_text()
    assert '<a href="02_agreement.html">02 · 02 · Annotator agreement</a>' in index
    assert '<a href="03_sweep.html">' in index and "κ falls" in index and "supported" in index
    page = (out / "02_agreement.html").read_text()
    assert "Annotator agreement" in page and "<pre>2</pre>" in page          # markdown and outputs


def test_the_site_is_ignored_by_git():
    done = subprocess.run(["git", "check-ignore", "-q", "site/xquad/index.html"], cwd=REPO_ROOT)
    assert done.returncode == 0
