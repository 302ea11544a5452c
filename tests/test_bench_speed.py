"""bench/train_encode_speed.py: the model shape and FLOP accounting behind its MFU, and
its table, without timing anything (speed targets live in the benchmark, not in tests)."""
import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train_encode_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_encode_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_large_shape_is_multilingual_e5_large(bench):
    """560M parameters, of which 303M outside the embeddings: the N in 6 x N x tokens."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    with torch.device("meta"):
        model = XLMRobertaModel(XLMRobertaConfig(**bench.LARGE_SHAPE), add_pooling_layer=False)
    total = sum(p.numel() for p in model.parameters())
    assert 558e6 < total < 560e6            # 560M with the pooler e5 never uses
    assert 302e6 < bench.non_embedding_params(model) < 304e6


def test_peak_matmul_is_positive_and_finite(bench):
    peak = bench.peak_matmul_tflops("cpu", torch.float32, n=64, reps=2)
    assert 0 < peak < 100


def test_markdown_reports_ratios_mfu_and_the_paper_projection(bench):
    train = [dict(model="large", setting="plain", pairs_per_s=20.0, mfu=0.1, padding_share=0.35,
                  peak_memory_gib=30.0, warmup_seconds=3.0),
             dict(model="large", setting="ours", pairs_per_s=100.0, mfu=0.45, padding_share=0.1,
                  peak_memory_gib=20.0, warmup_seconds=2.5)]
    encode = [dict(model="large", setting="plain", passages_per_s=500.0, mfu=0.2, min_cosine_vs_plain=1.0),
              dict(model="large", setting="ours", passages_per_s=2000.0, mfu=0.55, min_cosine_vs_plain=0.999)]
    text = bench.markdown(dict(device="GPU", torch="2.x", date="2026-11-23", peak_tflops=800.0,
                               peak_dtype="bfloat16", train=train, encode=encode,
                               failed=[dict(task="train", model="large", setting="ours+compile",
                                            error="RuntimeError('x')")]))
    assert "| large | ours | paragraph | 100.0 | 5.00x | 1.00x | 45.0% | 10% | 20.0 | 2.5 |" in text
    assert "| large | ours | 2000 | 4.00x | 55.0% | 0.99900 |" in text
    assert "FAILED: train large ours+compile" in text
    # 300K pairs x 2 epochs at 100 pairs/s: 6000 s
    assert "takes 1.7 h here" in text and "~33 pairs/s" in text
    # a sentence row is set against the paragraph row of its setting
    train.append(dict(model="large", setting="ours", unit="sentence", pairs_per_s=300.0, mfu=0.4,
                      padding_share=0.2, peak_memory_gib=10.0, warmup_seconds=1.0))
    text = bench.markdown(dict(device="GPU", torch="2.x", date="2026-12-01", peak_tflops=800.0,
                               peak_dtype="bfloat16", train=train, encode=encode, failed=[]))
    assert "| large | ours | sentence | 300.0 | - | 3.00x | 40.0% | 20% | 10.0 | 1.0 |" in text
    assert "takes 1.7 h here" in text        # the paper anchor stays on paragraph pairs
