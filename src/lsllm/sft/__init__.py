"""The instruction-tuning (SFT) baseline that LS-LLaMA is measured against.

A decoder is taught with TRL's SFTTrainer (+ PEFT LoRA, QLoRA on CUDA) to answer a prompt that
lists the labels with the label word; it is scored by greedy generation, and answers that name no
label are counted as irregular (or, with `--scoring likelihood`, by the label whose answer is most
probable). Multi-label data is answered with every label that applies ("joy, optimism" or "none"),
regression data with the number. Runs use the same data, model resolution and run directory conventions as `lsllm
train`, so `lsllm compare` (lsllm.compare.compare_runs) can set LS, unLS and SFT side by side.

Modules (import the heavy ones directly; this package imports only the configs):
    config       SFTConfig, SFTRunConfig
    templates    PromptTemplate: chat | llama2-chat | plain
    answers      Answers per problem type (label → answer → prediction; Problem.sft_answer_format() picks), normalize, AnswerParser, irregular_summary
    generation   generate_answers (greedy; the shared prompt prefix computed once, token-budget batches)
    likelihood   label_log_likelihoods (every label's answer scored in one pass: --scoring likelihood)
    training     train_sft(cfg) -> run_dir
    evaluation   evaluate_sft(run_dir, ...) -> metrics
"""

from lsllm.sft.config import TEMPLATES, SFTConfig, SFTRunConfig

__all__ = ["TEMPLATES", "SFTConfig", "SFTRunConfig"]
