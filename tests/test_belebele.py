"""The Belebele loader on a small local copy in the hub layout of facebook/belebele
(README configs, one `data/{code}.jsonl` per language, split "test")."""
import json

import datasets
import pytest

from gradedrel.data import belebele

LINK_A = "https://en.wikinews.org/wiki/Example_A"
LINK_B = "https://en.wikivoyage.org/wiki/Example_B"
ROWS = {  # code -> (link, question_number, passage, question)
    "eng_Latn": [(LINK_A, 1, "Passage A.", "Question A1?"),
                 (LINK_A, 2, "Passage A.", "Question A2?"),
                 (LINK_B, 1, "Passage B.", "Question B1?")],
    "fin_Latn": [(LINK_B, 1, "Kohta B.", "Kysymys B1?"), (LINK_A, 1, "Kohta A.", "Kysymys A1?"),
                 (LINK_A, 2, "Kohta A.", "Kysymys A2?")],
}


@pytest.fixture(autouse=True)
def offline_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def write_hub_copy(root, rows=ROWS):
    (root / "data").mkdir(parents=True)
    configs = []
    for code, items in rows.items():
        with (root / "data" / f"{code}.jsonl").open("w", encoding="utf-8") as f:
            for link, number, passage, question in items:
                f.write(json.dumps({
                    "link": link, "question_number": number, "flores_passage": passage,
                    "question": question, "mc_answer1": "a", "mc_answer2": "b",
                    "mc_answer3": "c", "mc_answer4": "d", "correct_answer_num": "1",
                    "dialect": code, "ds": "2023-05-03"}) + "\n")
        configs.append(f"- config_name: {code}\n  data_files:\n  - split: test\n"
                       f"    path: data/{code}.jsonl\n")
    (root / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n",
                                    encoding="utf-8")
    return str(root)


def test_questions_retrieve_their_passage_in_every_language(tmp_path):
    coll = belebele.load_belebele(["en", "fi"], source=write_hub_copy(tmp_path / "belebele"))
    assert coll.languages == ["en", "fi"]
    assert len(coll.corpus) == 4 and len(coll.queries) == 6 and len(coll.qrels) == 6
    d = coll.corpus.set_index("doc_id")
    assert d.loc[f"fi:{LINK_A}", ["base_id", "lang", "text", "group"]].tolist() == \
        [LINK_A, "fi", "Kohta A.", LINK_A]
    q = coll.queries.set_index("query_id")
    assert q.loc[f"en:{LINK_A}#2", ["base_id", "text", "group"]].tolist() == \
        [f"{LINK_A}#2", "Question A2?", LINK_A]
    assert set(coll.qrels["grade"]) == {3}
    assert coll.qrels_dict("en", "fi") == {
        f"en:{LINK_A}#1": {f"fi:{LINK_A}": 3}, f"en:{LINK_A}#2": {f"fi:{LINK_A}": 3},
        f"en:{LINK_B}#1": {f"fi:{LINK_B}": 3}}
    assert coll.qrels_dict("fi", "fi")[f"fi:{LINK_B}#1"] == {f"fi:{LINK_B}": 3}


@pytest.mark.parametrize("rows, message", [
    ({"eng_Latn": ROWS["eng_Latn"] + [(LINK_B, 1, "Passage B.", "Again?")]},
     "question .*Example_B#1' appears twice"),
    ({"eng_Latn": ROWS["eng_Latn"] + [(LINK_B, 2, "Another passage.", "B2?")]},
     "link .*Example_B' has 2 different passages"),
    ({"eng_Latn": ROWS["eng_Latn"], "fin_Latn": ROWS["fin_Latn"][:2]},
     "fin_Latn is not parallel to eng_Latn: 1 questions differ"),
])
def test_ids_must_be_unique_and_parallel(tmp_path, rows, message):
    source = write_hub_copy(tmp_path / "belebele", rows)
    langs = ["en", "fi"][:len(rows)]
    with pytest.raises(ValueError, match=message):
        belebele.load_belebele(langs, source=source)


def test_unknown_language_lists_the_known_ones():
    with pytest.raises(ValueError, match="no FLORES code for 'xx'; known: en, ar"):
        belebele.load_belebele(["xx"])
