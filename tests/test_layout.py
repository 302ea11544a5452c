"""The library's layout: stage subpackages, no import cycles, a README map that matches."""
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib" / "gradedrel"
STAGES = ("data", "models", "retrieval", "annotation", "training", "sweeps", "multiref")
SHARED = ("paths", "config", "results", "jsonl_log", "producers", "figure_check", "processes",
          "claims", "site")


def module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every gradedrel module a file imports, at the top or inside a function."""
    found = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if not base.startswith("gradedrel"):
                continue
            for alias in node.names:   # `from gradedrel.x import y`: y may be a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_path(candidate) else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gradedrel"))
    return {m for m in found if module_path(m)}


def module_path(name: str) -> Path | None:
    base = LIB.parent.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) - {module_name(p)} for p in LIB.rglob("*.py")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert len(graph) > 30
    assert cycles(graph) == []


def test_no_stage_imports_a_stage_that_imports_it_back():
    stage_graph = {}
    for mod, deps in import_graph().items():
        parts = mod.split(".")
        if len(parts) < 3 or parts[1] not in STAGES:
            continue
        stage_graph.setdefault(parts[1], set()).update(
            d.split(".")[1] for d in deps if len(d.split(".")) > 2 and d.split(".")[1] != parts[1])
    assert cycles(stage_graph) == []


def test_the_top_level_holds_only_stages_and_shared_modules():
    top = {p.stem for p in LIB.glob("*.py")} - {"__init__"}
    folders = {p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top == set(SHARED)
    assert folders == set(STAGES)
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((LIB / stage / "__init__.py").read_text()))
        assert doc and "in," in doc and "out" in doc, f"{stage}/__init__.py: say what the stage takes and gives"


def test_the_readme_map_matches_the_tree():
    """The map lives in docs/library.md, which the README links."""
    readme = (REPO / "docs" / "library.md").read_text()
    assert "docs/library.md" in (REPO / "README.md").read_text()
    block = readme.split("## The library")[1].split("```")[1]
    listed = set(re.findall(r"^[ \t]+([a-z_0-9]+)", block, flags=re.M))
    for stage in STAGES:
        modules = {p.stem for p in (LIB / stage).glob("*.py")} - {"__init__"}
        assert f"{stage}/" in block, f"README map lacks {stage}/"
        assert modules <= listed, f"README map lacks {sorted(modules - listed)} of {stage}/"
    every = {p.stem for p in LIB.rglob("*.py")} | set(STAGES)
    assert listed <= every, f"README map names what is not in the tree: {sorted(listed - every)}"


def test_notebooks_are_thin():
    """A notebook holds parameters, calls and figures: its logic lives in the library,
    where the tests reach it."""
    import json
    for nb in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        source = "\n".join("".join(c["source"]) for c in cells)
        lines = [line for line in source.splitlines() if line.strip()]
        assert len(lines) <= 150, f"{nb.name}: {len(lines)} code lines"
        defined = [n for n in ast.walk(ast.parse(source))
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defined, f"{nb.name} defines {[n.name for n in defined]}"
