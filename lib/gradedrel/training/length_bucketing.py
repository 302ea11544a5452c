"""Length-bucketed batches without duplicate texts, for contrastive training.

sentence-transformers' collator pads every column of a batch to its longest text, so a
random batch of passages pays for its longest member. This sampler shuffles the data,
cuts it into windows of `window_batches` batches, sorts each window by length (with a
little noise) and fills batches from it, so a batch holds texts of similar length; the
batches are then shuffled so long and short steps interleave. A window of 16 batches
keeps each batch a draw from ~500 pairs rather than from the whole set, so in-batch
negatives stay diverse.

Like BatchSamplers.NO_DUPLICATES, no text appears twice in a batch (a query's second
positive would otherwise be its own in-batch negative). That limits what sorting can do
when few passages carry many pairs: on the XQuAD sweep's English tau=1 training set
(2,444 pairs over 180 distinct paragraphs) 57% of the passage positions of random
no-duplicates batches are padding and 44% of bucketed ones, since each batch must still
span 32 distinct paragraphs; with distinct passages (the tests' lognormal lengths) it is
49% against 10%. The sampler is the `batch_sampler` callable that
SentenceTransformerTrainingArguments accepts; every epoch is a fixed function of
(seed, epoch).

The no-duplicates rule also leaves a tail: rows held back because their query or passage
was already in the batch being filled wait for the end of the epoch, where they fill
short batches, often several. A batch of one row is a step whose InfoNCE loss is zero
(no negative) and a batch of two has one negative, yet each moves the schedule. With
`tail="rebalanced"` (the default) the short batches are then merged: each row of the
shortest moves into another short batch without its texts, or swaps places with a row
of a full batch that can move there, until no short batch can be emptied. Over two
epochs of each of the XQuAD sweep's 48 seed-0 training sets (`bench/batch_tail.py`) the
greedy fill made 99 batches more than ceil(pairs / 32), up to 5 in one epoch (es tau=2 at
2,000 instances: 38 batches, five of a single row, where 33 hold its 1,051 pairs), and 78
batches of one or two rows; rebalanced, none, at the same padding. `tail="greedy"` keeps
the greedy fill, with which the stored `xquad` grid and notebook 06's runs were trained.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler

DEFAULT_WINDOW_BATCHES = 16
# lengths are sorted with +-5% multiplicative noise, so a data set no larger than one
# window is not cut into the same batches every epoch
DEFAULT_JITTER = 0.05
TAILS = ("rebalanced", "greedy")


class LengthBucketedBatchSampler(DefaultBatchSampler):
    """Batches of similar-length rows and distinct texts; `lengths[i]` is row i's cost
    (e.g. the token count of its longest text)."""

    def __init__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns=None,
                 generator=None, seed: int = 0, *, lengths, window_batches: int = DEFAULT_WINDOW_BATCHES,
                 jitter: float = DEFAULT_JITTER, tail: str = "rebalanced"):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        self.lengths = np.asarray(lengths)
        if len(self.lengths) != len(dataset):
            raise ValueError(f"{len(self.lengths)} lengths for {len(dataset)} rows")
        if window_batches < 1:
            raise ValueError(f"window_batches must be >= 1, got {window_batches}")
        if tail not in TAILS:
            raise ValueError(f"tail must be one of {TAILS}, got {tail!r}")
        self.window_batches = window_batches
        self.tail = tail
        self._len = None
        self.jitter = jitter
        label_columns = set(valid_label_columns or [])
        columns = [c for c in dataset.column_names if c not in label_columns]
        self.row_texts = [frozenset(row) for row in zip(*(dataset[c] for c in columns))]

    def __len__(self) -> int:
        # The first epoch's batch count; the trainer plans its schedule on it. A row held
        # back by a duplicate can make an epoch a batch or two longer than a full split
        # (sentence-transformers' no-duplicates sampler does the same); the trainer's step
        # budget then ends the last epoch that much early.
        if self._len is None:
            self._len = len(self.epoch_batches(epoch=0))
        return self._len

    def epoch_batches(self, epoch: int | None = None) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        order = rng.permutation(len(self.lengths))
        window = self.batch_size * self.window_batches
        batches, carry = [], []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            noise = rng.uniform(1 - self.jitter, 1 + self.jitter, len(chunk))
            chunk = chunk[np.argsort(-self.lengths[chunk] * noise, kind="stable")]
            full, carry = self._fill(carry + chunk.tolist())
            batches += full
        if carry:                              # the tail, and rows that met a duplicate
            batches += self._fill(carry, partial=True)[0]
            if self.tail == "rebalanced":
                batches = self._merge_short(batches)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _fill(self, rows: list[int], partial: bool = False) -> tuple[list[list[int]], list[int]]:
        """Fill batches greedily in order from `rows`, a row waiting while one of its texts
        is already in the batch being filled. Returns the full batches and the rows left,
        or with `partial` every row, the last batches maybe short."""
        batches = []
        while rows and (partial or len(rows) >= self.batch_size):
            batch, seen, rest = [], set(), []
            for r in rows:
                if len(batch) < self.batch_size and seen.isdisjoint(self.row_texts[r]):
                    batch.append(r)
                    seen |= self.row_texts[r]
                else:
                    rest.append(r)
            if len(batch) < self.batch_size and not partial:
                break
            batches.append(batch)
            rows = rest
        return batches, rows

    def _merge_short(self, batches: list[list[int]]) -> list[list[int]]:
        """Empty short batches into the other short ones, directly or by swapping a row
        with a full batch (the row that leaves the full batch must fit a short one);
        texts stay distinct within every batch. The shortest batch is tried first."""
        texts = [set().union(*(self.row_texts[r] for r in b)) for b in batches]
        progress = True
        while progress:
            short = sorted((i for i, b in enumerate(batches) if len(b) < self.batch_size),
                           key=lambda i: len(batches[i]))
            progress = False
            for victim in short[:-1]:
                trial = [list(b) for b in batches]
                trial_texts = [set(t) for t in texts]
                targets = [i for i in short if i != victim]
                if all(self._place(r, trial, trial_texts, targets) for r in batches[victim]):
                    batches = [b for i, b in enumerate(trial) if i != victim]
                    texts = [t for i, t in enumerate(trial_texts) if i != victim]
                    progress = True
                    break
        return batches

    def _place(self, row: int, batches, texts, targets) -> bool:
        """Put `row` into a target batch with room, or into a full batch in exchange for
        a row of similar length that fits a target; False if neither is possible."""
        mine = self.row_texts[row]
        room = [t for t in targets if len(batches[t]) < self.batch_size]
        for t in room:
            if texts[t].isdisjoint(mine):
                batches[t].append(row)
                texts[t] |= mine
                return True
        best = None                          # (length gap, full batch, position, target)
        for f, batch in enumerate(batches):
            if len(batch) < self.batch_size:
                continue
            clash = texts[f] & mine
            for pos, other in enumerate(batch):
                if not clash <= self.row_texts[other]:
                    continue
                gap = abs(int(self.lengths[other]) - int(self.lengths[row]))
                if best is not None and gap >= best[0]:
                    continue
                fit = next((t for t in room if texts[t].isdisjoint(self.row_texts[other])), None)
                if fit is not None:
                    best = (gap, f, pos, fit)
        if best is None:
            return False
        _, f, pos, t = best
        other = batches[f][pos]
        batches[f][pos] = row
        texts[f] = (texts[f] - self.row_texts[other]) | mine
        batches[t].append(other)
        texts[t] |= self.row_texts[other]
        return True

    def __iter__(self):
        yield from self.epoch_batches()


def length_bucketed_sampler(lengths, window_batches: int = DEFAULT_WINDOW_BATCHES,
                            jitter: float = DEFAULT_JITTER, tail: str = "rebalanced"):
    """The `batch_sampler` argument for SentenceTransformerTrainingArguments."""
    return partial(LengthBucketedBatchSampler, lengths=list(lengths), window_batches=window_batches,
                   jitter=jitter, tail=tail)


def token_lengths(tokenizer, texts, max_length: int) -> np.ndarray:
    """Token counts (special tokens included, capped at `max_length`) of `texts`."""
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)
    return np.array([len(ids) for ids in enc["input_ids"]])


def padding_share(batches, lengths) -> float:
    """Share of computed positions that are padding when each batch is padded to its
    longest row."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    computed = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1 - real / computed
