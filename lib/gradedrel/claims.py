"""Claims tables: each headline claim of a notebook as one row, its verdict chosen by rule.

Takes, per claim: the sentence claimed, the test that decides it, n, the effect with its
interval, p, the correction applied (or a family of rows to correct together with
Benjamini-Hochberg) and the direction the claim asserts (+1: the effect is positive, -1:
negative). Gives the table every notebook 02-05 commits as data/results/PROFILE/NN_claims.csv
(`claims_table`; columns COLUMNS), the rule (`verdict`), the small tests a row needs
(`mean_test` over units, `sign_test`, `all_of` for "in every cell" claims) and the README's
results table read from those files (`readme_table`, `update_readme`;
`python -m gradedrel.claims readme` rewrites the table between README.md's markers).
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
COLUMNS = ["claim", "test", "n", "effect", "ci_low", "ci_high", "p", "correction", "q", "verdict"]
SUPPORTED, CONSISTENT, NOT_SUPPORTED, CONTRADICTED, UNTESTABLE = (
    "supported", "consistent but not significant", "not supported", "contradicted", "untestable here")
VERDICTS = (SUPPORTED, CONSISTENT, NOT_SUPPORTED, CONTRADICTED, UNTESTABLE)
README_START, README_END = "<!-- claims table: start -->", "<!-- claims table: end -->"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def verdict(effect, p, q=None, ci_low=None, ci_high=None, direction: int = 1,
            alpha: float = ALPHA) -> str:
    """The rule, the same for every row:

    * "untestable here": no effect or no p-value (nothing measured here decides it);
    * the test decides at q, the corrected p, where there is one, else at p; it is
      significant when that value is below `alpha` and the interval, where one is given,
      excludes 0 (an interval from another procedure than p, e.g. a bootstrap beside a
      rank test, must agree with it);
    * "supported": significant, effect on the claimed side of 0 (`direction` +1 or -1);
    * "contradicted": significant, effect on the other side;
    * "consistent but not significant": effect on the claimed side, not significant;
    * "not supported": effect zero or on the other side, not significant.
    """
    if _missing(effect) or (_missing(p) and _missing(q)):
        return UNTESTABLE
    decide = p if _missing(q) else q
    excludes_zero = (_missing(ci_low) or _missing(ci_high)) or ci_low > 0 or ci_high < 0
    significant = decide < alpha and excludes_zero
    claimed = np.sign(effect) == np.sign(direction) and effect != 0
    if significant:
        return SUPPORTED if claimed else CONTRADICTED
    return CONSISTENT if claimed else NOT_SUPPORTED


def row(claim: str, test: str, n, effect, ci_low=np.nan, ci_high=np.nan, p=np.nan,
        correction: str = "none", q=np.nan, direction: int = 1, family: str | None = None) -> dict:
    """One claim. `family`: rows sharing a family name are BH-corrected together by
    `claims_table` (their q and correction are set there)."""
    return {"claim": claim, "test": test, "n": n, "effect": effect, "ci_low": ci_low,
            "ci_high": ci_high, "p": p, "correction": correction, "q": q,
            "direction": direction, "family": family}


def untestable(claim: str, reason: str) -> dict:
    """A claim this study cannot test, with the reason in the test column."""
    return row(claim, reason, 0, np.nan)


def bh(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control)."""
    p = np.asarray(p, dtype=float)
    return stats.false_discovery_control(p) if len(p) else p


def claims_table(rows: list[dict], alpha: float = ALPHA) -> pd.DataFrame:
    """The rows as the committed table: each family BH-corrected over its rows ("BH over
    the K <family>"), then each row's verdict by `verdict`."""
    rows = [dict(r) for r in rows]
    families: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("family"):
            families.setdefault(r["family"], []).append(r)
    for name, members in families.items():
        testable = [r for r in members if not _missing(r["p"])]
        for r, q in zip(testable, bh([r["p"] for r in testable])):
            r["q"], r["correction"] = float(q), f"BH over the {len(testable)} {name}"
    for r in rows:
        r["verdict"] = verdict(r["effect"], r["p"], r["q"], r["ci_low"], r["ci_high"],
                               r["direction"], alpha)
    return pd.DataFrame(rows, columns=COLUMNS + ["direction", "family"])[COLUMNS]


# --- the small tests a row needs ---------------------------------------------------------

def mean_test(values, level: float = 0.95) -> dict:
    """Mean of per-unit values (e.g. per-question differences) with its Student-t interval
    and the two-sided one-sample t-test of mean 0: n, effect, ci_low, ci_high, p."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return {"n": len(x), "effect": float(x.mean()) if len(x) else np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
    if np.all(x == x[0]):        # no spread: the test is undefined, the mean exact
        return {"n": len(x), "effect": float(x[0]), "ci_low": float(x[0]), "ci_high": float(x[0]),
                "p": 0.0 if x[0] != 0 else 1.0}
    result = stats.ttest_1samp(x, 0.0)
    ci = result.confidence_interval(confidence_level=level)
    return {"n": len(x), "effect": float(x.mean()), "ci_low": float(ci.low),
            "ci_high": float(ci.high), "p": float(result.pvalue)}


def sign_test(positive: int, n: int) -> float:
    """Two-sided exact binomial test of `positive` of `n` units against a half."""
    return float(stats.binomtest(int(positive), int(n), 0.5).pvalue) if n else np.nan


def all_of(p_values) -> float:
    """p of "every one of these holds" (intersection-union test): the largest p. No
    multiplicity correction is needed, and one failing unit fails the claim."""
    p = np.asarray(p_values, dtype=float)
    return float(p.max()) if len(p) else np.nan


def _eq(text: str) -> str:
    return text.replace("<", "< ") if text.startswith("<") else f"= {text}"


def sentences(table: pd.DataFrame) -> list[str]:
    """Each row as the sentence a notebook prints beside the table: the claim, the effect
    with its interval, n, p (and q with its correction), and the verdict; no more."""
    out = []
    for r in table.itertuples(index=False):
        if r.verdict == UNTESTABLE:
            out.append(f"{r.claim}: untestable here ({r.test}).")
            continue
        q = "" if _missing(r.q) else f", q {_eq(_p(r.q))} ({r.correction})"
        out.append(f"{r.claim}: {effect_text(r.effect, r.ci_low, r.ci_high)}, n = {r.n}, "
                   f"p {_eq(_p(r.p))}{q}: {r.verdict}.")
    return out


# --- the README's results table ----------------------------------------------------------

def _decimals(x) -> int:
    """Decimals that show `x` to about three significant digits (at least two)."""
    if _missing(x) or x == 0:
        return 2
    return int(min(6, max(2, 2 - math.floor(math.log10(abs(x))))))


def _num(x, decimals: int | None = None) -> str:
    if _missing(x):
        return ""
    return f"{x:+.{_decimals(x) if decimals is None else decimals}f}"


def effect_text(effect, ci_low=np.nan, ci_high=np.nan) -> str:
    """'+0.620 [+0.346, +0.765]': the interval at the effect's decimals."""
    d = _decimals(max((abs(x) for x in (effect, ci_low, ci_high) if not _missing(x)), default=np.nan))
    ci = "" if _missing(ci_low) or _missing(ci_high) else f" [{_num(ci_low, d)}, {_num(ci_high, d)}]"
    return f"{_num(effect, d)}{ci}"


def _p(x) -> str:
    if _missing(x):
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}" if x < 0.01 else f"{x:.2f}"


def readme_table(tables: dict[str, pd.DataFrame], links: dict[str, str]) -> str:
    """One markdown table of every claims table's rows: the notebook (a reference-style link
    to its rendering, the links after the table), the claim, n, the effect with its
    interval, p (and q where corrected) and the verdict."""
    lines = ["| | claim | n | effect [95% CI] | p (q) | verdict |", "|---|---|---|---|---|---|"]
    for key in sorted(tables):
        for r in tables[key].itertuples(index=False):
            decide = _p(r.p) if _missing(r.q) else f"{_p(r.p)} ({_p(r.q)})"
            n = "" if _missing(r.n) else f"{int(r.n)}"
            claim = str(r.claim).replace("|", "\\|")
            lines.append(f"| [{key}][nb{key}] | {claim} | {n} | {effect_text(r.effect, r.ci_low, r.ci_high)} | "
                         f"{decide} | **{r.verdict}** |")
    lines.append("")
    lines += [f"[nb{key}]: {links[key]}" for key in sorted(tables)]
    return "\n".join(lines)


def load_claims(results_dir: Path) -> dict[str, pd.DataFrame]:
    """NN -> the committed NN_claims.csv of one profile's results folder."""
    return {path.name[:2]: pd.read_csv(path) for path in sorted(Path(results_dir).glob("[0-9][0-9]_claims.csv"))}


def update_readme(readme: Path, results_dir: Path, rendered_dir: Path) -> bool:
    """Rewrite the table between README_START and README_END from the claims files; True
    when the file changed. Links point to the rendered notebooks, relative to the README."""
    readme = Path(readme)
    tables = load_claims(results_dir)
    links = {}
    for key in tables:
        found = sorted(Path(rendered_dir).glob(f"{key}_*.ipynb"))
        links[key] = found[0].relative_to(readme.parent).as_posix() if found else rendered_dir.as_posix()
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block")
    new = pattern.sub(lambda _: f"{README_START}\n{readme_table(tables, links)}\n{README_END}", text)
    if new != text:
        readme.write_text(new)
    return new != text


def main(argv=None) -> int:
    """python -m gradedrel.claims readme [PROFILE]: the README's table from that profile's
    claims files (default xquad)."""
    from gradedrel.paths import REPO_ROOT, RESULTS_DIR
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "readme":
        print(main.__doc__, file=sys.stderr)
        return 2
    profile = argv[1] if len(argv) > 1 else "xquad"
    changed = update_readme(REPO_ROOT / "README.md", RESULTS_DIR / profile,
                            REPO_ROOT / "notebooks" / "rendered" / profile)
    print(f"README.md: claims table {'updated' if changed else 'unchanged'} ({profile})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
