"""run_all.sh's argument check (config.check_run), on the real notebooks: what it runs, with
which parameters, and what it refuses before anything starts."""
import subprocess
from pathlib import Path

import pytest

from gradedrel.config import RunArgumentError, check_run, main, notebook_profile_keys, parse_value

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NUMBERS = "00 01 02 03 04 05 06 07 08"     # stated by hand: a notebook the check loses fails


def ran(plan) -> list[str]:
    return [Path(step["notebook"]).name[:2] for step in plan]


def test_every_notebook_without_only_and_exact_numbers_with_it():
    assert " ".join(ran(check_run(NOTEBOOKS, "xquad"))) == NUMBERS
    assert ran(check_run(NOTEBOOKS, "xquad", only="03")) == ["03"]
    assert ran(check_run(NOTEBOOKS, "xquad", only="06, 00")) == ["00", "06"]


@pytest.mark.parametrize("only", ["0", "", "3", "99", "03,", "03_threshold_sweep", "all"])
def test_only_refuses_anything_but_notebook_numbers(only):
    with pytest.raises(RunArgumentError, match=rf"--only {only!r}: .* not a notebook number; "
                                               rf"--only takes two-digit numbers, comma-separated, of: {NUMBERS}$"):
        check_run(NOTEBOOKS, "xquad", only=only)


def test_unknown_profile_unknown_key_and_reserved_keys_are_refused():
    with pytest.raises(RunArgumentError, match=r"unknown profile 'nope'; profiles: smoke, xquad"):
        check_run(NOTEBOOKS, "nope")
    with pytest.raises(RunArgumentError, match=r"unknown parameter 'no_such_key': not a parameter of 02 "
                                               r"\(they take: n_boot\)"):
        check_run(NOTEBOOKS, "xquad", only="02", params=[("no_such_key", "1")])
    for key in ("profile", "recompute", "verify", "config"):
        with pytest.raises(RunArgumentError, match=rf"{key}: set with run_all.sh's own options"):
            check_run(NOTEBOOKS, "xquad", only="03", params=[(key, "1")], mode="recompute")


def test_notebook_parameters_that_set_profile_keys_are_found_in_the_notebooks_code():
    keys = notebook_profile_keys(NOTEBOOKS / "03_threshold_sweep.ipynb")
    assert keys["learning_rate"] == "finetune_lr" and keys["taus"] == "finetune_taus"
    assert keys["langs"] == "finetune_langs" and keys["workers"] == "sweep_workers"
    assert "method" not in keys                      # how stored runs are tested: no profile key
    assert notebook_profile_keys(NOTEBOOKS / "00_zero_shot_baseline.ipynb")["encoder"] == "encoder"
    assert notebook_profile_keys(NOTEBOOKS / "02_annotator_agreement.ipynb") == {}


@pytest.mark.parametrize("params,named", [
    ([("finetune_lr", "1e-4")], r"finetune_lr"),
    ([("learning_rate", "1e-4")], r"learning_rate \(profile key finetune_lr\)"),
    ([("mixture_size", "500"), ("method", "wilcoxon")], r"mixture_size"),
])
def test_a_redraw_refuses_keys_that_change_what_is_computed(params, named):
    """`-p finetune_lr 1e-4 --only 03` without --recompute used to exit 0 after replacing the
    rendered notebook with 'no finished configuration of this grid in the store'."""
    with pytest.raises(RunArgumentError, match=rf"^{named}: a profile key decides what is computed, "
                                               r".* set it only with --recompute \(or --verify\)$"):
        check_run(NOTEBOOKS, "xquad", only="03", params=params)
    for mode in ("recompute", "verify"):            # where they are computed, they are taken
        (step,) = check_run(NOTEBOOKS, "xquad", only="03", params=params, mode=mode)
        assert {**step["parameters"], **step["config"]} == {k: parse_value(v) for k, v in params}


def test_a_redraw_takes_the_parameters_that_set_no_profile_key():
    (step,) = check_run(NOTEBOOKS, "xquad", only="03", params=[("method", "wilcoxon")])
    assert step == {"notebook": str(NOTEBOOKS / "03_threshold_sweep.ipynb"),
                    "parameters": {"method": "wilcoxon"}, "config": {}}
    (step,) = check_run(NOTEBOOKS, "xquad", only="02", params=[("n_boot", "200")])
    assert step["parameters"] == {"n_boot": 200}
    (step,) = check_run(NOTEBOOKS, "xquad", only="06", params=[("train", "False")],
                        yaml_mappings=[{"finetune_targets": ["zh"]}])     # airgap/run.sh's 06 stage
    assert step["parameters"] == {"train": False, "finetune_targets": ["zh"]}


def test_the_command_line_passes_mode_and_an_empty_only(capsys):
    assert main(["check", "--profile", "xquad", "--only", "03", "-p", "finetune_lr", "1e-4"]) == 2
    assert "only with --recompute" in capsys.readouterr().err
    assert main(["check", "--profile", "xquad", "--mode", "recompute", "--only", "03",
                 "-p", "finetune_lr", "1e-4"]) == 0
    assert '"config": {"finetune_lr": 0.0001}' in capsys.readouterr().out
    assert main(["check", "--profile", "xquad", "--only", ""]) == 2


@pytest.mark.parametrize("only", ["", "0"])
def test_run_all_sh_hands_its_only_to_the_check(only):
    """run_all.sh used to drop an empty --only (running everything) and the check matched a
    prefix ("0" ran every notebook). The unknown key stops the old one too, before anything
    is installed or run."""
    done = subprocess.run(["bash", str(REPO / "run_all.sh"), "--only", only, "-p", "no_such_key", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"run_all.sh: --only {only!r}: {only!r} is not a notebook number" in done.stderr
