"""The alignment fine-tune's loss settings (paper, 5.4 / Table 3) and its training columns,
apart from the loss (alignment_loss.py) so that reading stored results imports no torch."""
from __future__ import annotations

COLUMNS = ("query_en", "passage_en", "passage_tgt")

ABLATIONS = {
    "full": dict(query_nce_weight=1.0, passage_nce_weight=0.0, jsd_weight=1.0),
    "no_jsd": dict(query_nce_weight=1.0, passage_nce_weight=0.0, jsd_weight=0.0),
    "no_nce": dict(query_nce_weight=0.0, passage_nce_weight=0.0, jsd_weight=1.0),
    "nce_psg": dict(query_nce_weight=0.0, passage_nce_weight=1.0, jsd_weight=0.0),
}
ABLATION_LABELS = {"base": "Baseline (zero-shot)", "full": "Ours (L_JSD + L_NCE)",
                   "no_jsd": "w/o L_JSD", "no_nce": "w/o L_NCE", "nce_psg": "L_NCEpsg"}
