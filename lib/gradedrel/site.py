"""The rendered notebooks as a small static HTML site, for readers without Jupyter.

Takes a folder of rendered notebooks (notebooks/rendered/PROFILE/) and the profile's claims
tables (data/results/PROFILE/NN_claims.csv); gives site/PROFILE/: one page per notebook
(nbconvert's HTML export, figures embedded) and index.html, which links every page and
shows the claims tables. The main job (./run_all.sh) writes it after rendering; site/ is
ignored by git (it is rebuilt from committed files every run).
`python -m gradedrel.site RENDERED_DIR OUT_DIR [RESULTS_DIR]` builds it by hand.
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import pandas as pd


def title_of(notebook: Path) -> str:
    """The notebook's first markdown heading, else its file name."""
    for cell in json.loads(notebook.read_text()).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", [])).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return notebook.stem


def index_page(pages: list[tuple[str, str]], claims: dict[str, pd.DataFrame], heading: str) -> str:
    """index.html: the pages as a list, then each notebook's claims table."""
    items = "\n".join(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a></li>' for href, title in pages)
    tables = []
    for key, table in sorted(claims.items()):
        href = next((h for h, _ in pages if h.startswith(key)), "#")
        body = table.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="", border=0)
        tables.append(f'<h3><a href="{html.escape(href)}">{key}</a> claims</h3>\n{body}')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(heading)}</title>\n<style>body{{font-family:sans-serif;max-width:70em;"
            "margin:2em auto;padding:0 1em}table{border-collapse:collapse;font-size:0.85em}"
            "td,th{border:1px solid #ccc;padding:0.2em 0.4em;vertical-align:top}</style></head><body>\n"
            f"<h1>{html.escape(heading)}</h1>\n<h2>Notebooks</h2>\n<ul>\n{items}\n</ul>\n"
            f"<h2>Claims, one row each (verdicts by the rule in gradedrel.claims)</h2>\n"
            + "\n".join(tables) + "\n</body></html>\n")


def build(rendered_dir, out_dir, results_dir=None, heading: str = "gradedrel: rendered notebooks") -> list[Path]:
    """Write one HTML page per rendered notebook and index.html into `out_dir`; pages of
    notebooks no longer rendered are removed. Returns the pages written."""
    from nbconvert import HTMLExporter

    rendered_dir, out_dir = Path(rendered_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="classic")
    notebooks = sorted(rendered_dir.glob("[0-9][0-9]_*.ipynb"))
    written, pages = [], []
    for nb in notebooks:
        body, _ = exporter.from_filename(str(nb))
        page = out_dir / f"{nb.stem}.html"
        page.write_text(body)
        written.append(page)
        pages.append((page.name, f"{nb.stem[:2]} · {title_of(nb)}"))
    for stale in set(out_dir.glob("*.html")) - set(written) - {out_dir / "index.html"}:
        stale.unlink()
    claims = {}
    if results_dir is not None:
        claims = {p.name[:2]: pd.read_csv(p) for p in sorted(Path(results_dir).glob("[0-9][0-9]_claims.csv"))}
    (out_dir / "index.html").write_text(index_page(pages, claims, heading))
    return written + [out_dir / "index.html"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    pages = build(*argv)
    print(f"HTML site: {len(pages) - 1} notebook pages and index.html in {argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
