"""Scoring by label likelihood: the label whose answer tokens the model finds most probable.

Instead of generating an answer and parsing it, every label's answer (the completion tokens the
model was trained on, up to and including the first stop token) is scored after the prompt, and
the label with the highest summed log-probability wins. There are no irregular outputs: the
prediction is always a label. Including the stop token makes the score the probability that the
whole answer is exactly this label, so a label that is a prefix of another ("neutral" /
"neutral-positive") is not favoured for being shorter.

One forward pass per batch scores all labels: a row holds the prompt's own tokens, then each
label's answer as its own branch, and a 4D attention mask lets a branch see the prompt and
itself but not the other branches (positions restart after the prompt for every branch). The
shared prefix of all prompts comes from a `PrefixCache`, as in generation, and logits are
computed only at the positions that predict answer tokens.
"""

from __future__ import annotations

import logging

import torch
from transformers import PreTrainedModel

from lsllm.errors import ConfigError
from lsllm.models.attention import attn_implementation
from lsllm.sft.generation import (
    DEFAULT_BATCH_TOKENS,
    PrefixCache,
    progress_bar,
    shared_prefix_length,
    token_budget_batches,
)

log = logging.getLogger(__name__)

Answers = list[list[int]]  # one token-id list per label, in label order


def _layout(prompts: list[list[int]], answers: list[Answers], rows: list[int], n_prefix: int):
    """Token ids, branch ids, positions and scored columns of one batch.

    Columns: [the prompt's own tokens, left-padded to W | label 0's answer (width A0) | label 1's ...].
    branch: 0 for prompt tokens, k + 1 for label k's answer tokens, -1 for padding.
    """
    n_labels = len(answers[rows[0]])
    own = [prompts[i][n_prefix:] for i in rows]
    width = max(len(o) for o in own)
    spans = [max(len(answers[i][k]) for i in rows) for k in range(n_labels)]
    starts = [width + sum(spans[:k]) for k in range(n_labels)]
    total = width + sum(spans)
    ids = torch.zeros((len(rows), total), dtype=torch.long)
    branch = torch.full((len(rows), total), -1, dtype=torch.long)
    positions = torch.zeros((len(rows), total), dtype=torch.long)
    for r, i in enumerate(rows):
        n = len(own[r])
        ids[r, width - n : width] = torch.tensor(own[r], dtype=torch.long)
        branch[r, width - n : width] = 0
        positions[r, width - n : width] = torch.arange(n_prefix, n_prefix + n)
        for k, answer in enumerate(answers[i]):
            s = starts[k]
            ids[r, s : s + len(answer)] = torch.tensor(answer, dtype=torch.long)
            branch[r, s : s + len(answer)] = k + 1
            positions[r, s : s + len(answer)] = torch.arange(n_prefix + n, n_prefix + n + len(answer))
    # Column whose logits predict answer token j of label k: the prompt's last token for j = 0,
    # else the branch's token j - 1. Kept columns are the same for every row of the batch.
    predictors = [[width - 1] + [starts[k] + j - 1 for j in range(1, spans[k])] for k in range(n_labels)]
    return ids, branch, positions, predictors


def _branch_mask(branch: torch.Tensor, n_prefix: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, P + T) additive mask: the shared prefix, then causal within the prompt and within one branch.

    Padding is hidden from every other token but sees itself, so no row is fully masked (which
    would put NaN into the values other rows read).
    """
    t = branch.shape[1]
    key, query = branch[:, None, :], branch[:, :, None]  # (B, 1, T), (B, T, 1)
    causal = torch.ones((t, t), dtype=torch.bool).tril()
    allowed = causal & (key >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(t, dtype=torch.bool)
    allowed = torch.cat([torch.ones((branch.shape[0], t, n_prefix), dtype=torch.bool), allowed], dim=-1)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


@torch.inference_mode()
def label_log_likelihoods(
    model: PreTrainedModel,
    prompts: list[list[int]],
    answers: list[Answers],
    batch_size: int = 32,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    show_progress: bool = False,
) -> torch.Tensor:
    """Summed log-probabilities of every label's answer tokens after every prompt.

    Args:
        model: a causal LM with SDPA or eager attention (a custom 4D mask is needed).
        prompts: token ids of each prompt.
        answers: for each prompt, one answer token list per label (the same number for all).
        batch_size: the most prompts per forward pass.
        batch_tokens: the most padded tokens (prompt after the shared prefix + answers) per pass.
        show_progress: draw a progress bar (examples/s) on stderr.

    Returns:
        (N, K) fp32 tensor: row i, column k = log p(answers[i][k] | prompts[i]).

    Raises:
        ConfigError: flash attention (it ignores custom masks), or an empty answer.
    """
    if "flash" in str(attn_implementation(model)):
        raise ConfigError("--scoring likelihood needs --attn-implementation sdpa or eager (flash attention ignores the branch mask)")
    if any(not a for per_label in answers for a in per_label):
        raise ConfigError("a label's answer has no tokens: label likelihood needs non-empty answers")
    if not prompts:
        return torch.zeros((0, 0))
    was_training = model.training
    model.eval()
    prefix = PrefixCache(model, prompts[0][: shared_prefix_length(prompts)])
    n_prefix = len(prefix)
    dtype = next(model.parameters()).dtype
    lengths = [len(p) - n_prefix + sum(len(a) for a in per_label) for p, per_label in zip(prompts, answers, strict=True)]
    scores = torch.zeros((len(prompts), len(answers[0])), dtype=torch.float32)
    bar = progress_bar(len(prompts), "scoring labels", show_progress)
    for rows in token_budget_batches(lengths, batch_tokens, batch_size):
        ids, branch, positions, predictors = _layout(prompts, answers, rows, n_prefix)
        keep = sorted({c for cols in predictors for c in cols})
        column = {c: j for j, c in enumerate(keep)}
        out = model(
            input_ids=ids.to(prefix.device),
            attention_mask=_branch_mask(branch, n_prefix, dtype).to(prefix.device),
            position_ids=positions.to(prefix.device),
            past_key_values=prefix.for_batch(len(rows)),
            use_cache=True,
            logits_to_keep=torch.tensor(keep, device=prefix.device),
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu()  # (B, len(keep), V)
        for r, i in enumerate(rows):
            for k, answer in enumerate(answers[i]):
                cols = [column[c] for c in predictors[k][: len(answer)]]
                scores[i, k] = logprobs[r, cols, answer].sum()
        bar.update(len(rows))
    bar.close()
    if was_training:
        model.train()
    return scores
