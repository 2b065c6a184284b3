"""`lsllm export RUN OUT --format vllm`: a trained run as a checkpoint that vLLM serves unchanged.

vLLM runs a decoder's stock ``*ForSequenceClassification`` checkpoint itself (``vllm serve OUT
--runner pooling``: ``/classify``; offline ``LLM(OUT, runner="pooling").classify``): it pools the
final hidden states, applies the head ``score`` and an activation chosen by ``problem_type``. An
LS run merged in fp32 is such a checkpoint once its config names the family's stock class, so
this module writes::

    config.json            the merged model's config: architectures = the stock class (e.g.
                           LlamaForSequenceClassification), id2label / label2id, pad_token_id,
                           problem_type (vLLM 0.32: softmax, sigmoid per label, or the raw value),
                           no lsllm_* keys
    model.safetensors      the weights (LoRA merged in fp32; a regression head already outputs
                           the original scale)
    tokenizer files
    modules.json, 1_Pooling/config.json
                           mean pooling only: the sentence-transformers pooling files, the one
                           place in the folder vLLM 0.32 reads a pooling from (``get_pooling_config``);
                           last-token pooling is vLLM's default for decoders and needs no file
    lsllm-vllm.json        what the caller must do and know: the prompt template, fields, labels,
                           problem type (thresholds), pooling, the serve command and a request

vLLM tokenizes each input itself, with the tokenizer's special tokens as lsllm does; it knows
nothing of lsllm's prompt, so the caller puts each input into the run's template (lsllm-vllm.json
``prompt``). What vLLM cannot run is refused in one line before anything is written: attention
without the causal mask (LS-unLLM, top-k), sequence repetition, max pooling (vLLM pools with CLS,
LAST or MEAN), token classification (NER: lsllm's word-level decoding), and families that have
no stock class in transformers.

Before the folder is written, the stock class loaded from it by transformers (the class vLLM
reimplements) is checked against the run's own outputs on a few texts, the same way: softmax,
sigmoid or value, pooled as vLLM is told to. vLLM itself is checked by tests/vllm_export/test_vllm_engine.py.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lsllm.errors import ConfigError, ModelError
from lsllm.problems import Problem, family

VLLM_INFO = "lsllm-vllm.json"
VLLM_VERSION = "0.32"  # the vLLM the export is written for and tested with (tests/vllm_export/test_vllm_engine.py)
TOLERANCE = 1e-4  # max |output difference| stock transformers class vs the run, both fp32
POOLERS = {"last": "LAST", "mean": "MEAN"}  # lsllm pooling -> vLLM's (vLLM 0.32: CLS, LAST or MEAN; no max)
INSTEAD = "export it with `lsllm export RUN OUT --format onnx` or serve it with `lsllm serve RUN`"
EXAMPLE_TEXT = "a gripping, beautifully acted film"


# ----------------------------------------------------------------------------- what vLLM can run


def stock_architecture(config: Any) -> str:
    """The family's stock ``*ForSequenceClassification`` class name in transformers, from the config's model_type.

    Raises:
        ConfigError: the family has none (vLLM would not know what to build).
    """
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    model_type = getattr(config, "model_type", None)
    name = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.get(model_type)
    if not name or not hasattr(transformers, name):
        raise ConfigError(f"the {model_type!r} family has no stock sequence-classification class in transformers, "
                          f"so vLLM cannot load it; {INSTEAD}")
    return name


def check_servable(config: Any, problem: Problem) -> None:
    """Refuse, in one line naming what to use instead, a run vLLM cannot reproduce."""
    if problem.vllm_refusal is not None:
        raise ConfigError(f"{problem.vllm_refusal}; {INSTEAD}")
    if getattr(config, "lsllm_repeat", False):
        raise ConfigError("a run with sequence repetition (--attention repeat) cannot be exported for vLLM: vLLM "
                          f"feeds each input once; {INSTEAD}")
    if getattr(config, "lsllm_bidirectional", False):
        layers = getattr(config, "lsllm_unmask_layers", None)
        mode = f"top-{layers} unmasked" if layers else "unmasked (bidirectional)"
        raise ConfigError(f"a run with {mode} attention (LS-unLLM) cannot be exported for vLLM: vLLM runs this "
                          f"family with the causal mask; {INSTEAD}")
    pooling = getattr(config, "lsllm_pooling", "last")
    if pooling not in POOLERS:
        raise ConfigError(f"a run with {pooling} pooling cannot be exported for vLLM: vLLM pools with "
                          f"{' or '.join(POOLERS)} (CLS) only; {INSTEAD}")
    stock_architecture(config)


# ----------------------------------------------------------------------------- the folder


def vllm_config(saved: dict[str, Any], architecture: str, labels: Sequence[str], pad_token_id: int | None) -> dict[str, Any]:
    """The merged model's config.json as the stock class reads it: the class name, labels, no lsllm_* keys."""
    config = {key: value for key, value in saved.items() if not key.startswith("lsllm_")}
    config["architectures"] = [architecture]
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    if pad_token_id is not None:
        config["pad_token_id"] = pad_token_id
    return config


def write_pooling(folder: Path, pooling: str, hidden_size: int) -> None:
    """Mean pooling as the sentence-transformers files vLLM reads it from (modules.json, 1_Pooling/config.json).

    vLLM takes the activation's default from the same files (on with a Normalize module, off
    without): `serve_command` turns it back on with --pooler-config, since there is none here.
    """
    if pooling != "mean":
        return
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (folder / "1_Pooling").mkdir()
    settings = {"word_embedding_dimension": hidden_size, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def pooler_config(pooling: str) -> dict[str, Any]:
    """What `vllm serve --pooler-config` (``LLM(pooler_config=...)``) must add to the folder's own settings."""
    return {"use_activation": True} if pooling == "mean" else {}


def serve_command(out: Path | str, pooling: str) -> list[str]:
    """``vllm serve OUT --runner pooling`` (+ the pooler flag mean pooling needs), as an argument list."""
    command = ["vllm", "serve", str(out), "--runner", "pooling"]
    extra = pooler_config(pooling)
    return command + (["--pooler-config", json.dumps(extra)] if extra else [])


def template(prompt: str | None, fields: Sequence[str] | None) -> str | None:
    """The template the run puts every input in: its --prompt, the default one for several fields, or None (the text alone)."""
    from lsllm.data.encoding import pair_prompt

    if prompt or not fields or len(fields) < 2:
        return prompt
    return pair_prompt(list(fields))


def render_prompt(prompt: str | None, fields: Sequence[str] | None, values: dict[str, str]) -> str:
    """One input as the caller must send it: the run's template with each ``{field}`` put in (the text alone without one)."""
    from lsllm.data.encoding import apply_prompt

    return apply_prompt(prompt, values if fields else values["text"])


def example_input(fields: Sequence[str] | None) -> dict[str, str]:
    """An example input of the run's shape, for the printed client call."""
    if not fields:
        return {"text": EXAMPLE_TEXT}
    return {name: f"<{name}>" for name in fields}


# ----------------------------------------------------------------------------- the check


def stock_outputs(folder: Path, features: Sequence[dict], pooling: str, activation: Callable) -> list[torch.Tensor]:
    """The outputs the stock class loaded from ``folder`` gives, one unpadded input at a time, pooled as vLLM pools."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for feature in features:
            ids = torch.tensor([feature["input_ids"]], dtype=torch.long)
            if pooling == "last":
                logits = model(input_ids=ids).logits
            else:  # mean: the backbone's hidden states averaged over every token, then the stock head
                hidden = model.model(input_ids=ids).last_hidden_state
                logits = model.score(hidden.mean(1))
            out.append(activation(logits.float())[0])
    return out


@dataclass
class VllmExportReport:
    out: Path
    architecture: str
    pooling: str
    problem: str
    outputs: str  # what vLLM's /classify returns (`Problem.vllm_outputs`)
    n_texts: int
    max_diff: float  # the stock class vs the run, in outputs (probabilities or values)
    prompt: str | None = None  # the template the caller puts each input into
    serve: list[str] = field(default_factory=list)
    client: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        body = json.dumps(self.client, ensure_ascii=False)
        caller = (f"the caller puts each input into the run's prompt ({self.out / VLLM_INFO})" if self.prompt
                  else "inputs go to vLLM as they are (the run has no prompt)")
        return [
            f"{self.architecture} (stock transformers) vs the run on {self.n_texts} texts: max |output difference| "
            f"{self.max_diff:.2e} (tolerance {TOLERANCE:g})",
            f"vLLM checkpoint written to {self.out}: {self.architecture}, {self.pooling} pooling, {self.problem} "
            f"({self.outputs}); {caller}",
            f"serve:  {shlex.join(self.serve)}",
            f"client: curl -s http://127.0.0.1:8000/classify -H 'Content-Type: application/json' -d {shlex.quote(body)}",
        ]

    def warnings(self) -> list[str]:
        return []


def export_vllm(run_dir: str | Path, out_dir: str | Path, texts: Sequence[str],
                log: Callable[[str], None] | None = None) -> VllmExportReport:
    """Write a trained LS run to ``out_dir`` as a vLLM checkpoint (see the module docstring) and check it.

    Raises:
        ConfigError: OUT not empty, not a run, or a run vLLM cannot reproduce.
        ModelError: the stock class loaded from the written folder does not give the run's outputs.
    """
    from transformers import AutoConfig

    from lsllm.data import SeqExample
    from lsllm.files import atomic_replace_dir, staging_dir
    from lsllm.inference.prediction import feature_probabilities
    from lsllm.pipeline import load_run
    from lsllm.runs import RunDir, check_out_dir, versions

    out = Path(out_dir)
    check_out_dir(out)
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise ConfigError(f"{run.root}: no such run directory")
    info = run.run_info()  # a finished LS run, or a one-line error
    check_servable(AutoConfig.from_pretrained(run.model), family(info.task, info.problem))  # before any weights are read

    classifier, _ = load_run(run.root, dtype="float32", device="cpu")
    model = classifier.model.eval()
    architecture = stock_architecture(model.config)
    pooling = model.pooling
    problem = classifier.problem
    if classifier.fields:
        examples = [classifier.example(i, {name: texts[(i + k) % len(texts)] for k, name in enumerate(classifier.fields)})
                    for i in range(len(texts))]
    else:
        examples = [SeqExample(t) for t in texts]
    features = classifier.encode(examples).features
    expected = feature_probabilities(model, features, classifier.tokenizer.pad_token_id, classifier.max_batch_tokens,
                                     activation=problem.outputs)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out)
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging)
        classifier.tokenizer.save_pretrained(staging)
        saved = json.loads((staging / "config.json").read_text(encoding="utf-8"))
        config = vllm_config(saved, architecture, classifier.labels, classifier.tokenizer.pad_token_id)
        (staging / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_pooling(staging, pooling, model.config.get_text_config().hidden_size)
        got = stock_outputs(staging, features, pooling, problem.stock_outputs)
        diff = max(float((a - b).abs().max()) for a, b in zip(got, expected, strict=True))
        if diff > TOLERANCE:
            raise ModelError(f"{architecture} loaded from the export does not reproduce the run (max |output difference| "
                             f"{diff:.2e} > {TOLERANCE:g}, {pooling} pooling); please report it")
        client = {"input": [render_prompt(classifier.prompt, classifier.fields, example_input(classifier.fields))]}
        report = VllmExportReport(out, architecture, pooling, problem.name, problem.vllm_outputs, len(features), diff,
                                  template(classifier.prompt, classifier.fields), serve_command(out, pooling), client)
        metadata = {
            "format": "vllm",
            "vllm": VLLM_VERSION,
            "architecture": architecture,
            "labels": list(classifier.labels),
            "problem": problem.name,
            "problem_state": problem.state(),
            "outputs": problem.vllm_outputs,
            "prompt": template(classifier.prompt, classifier.fields),
            "fields": classifier.fields,
            "max_length": classifier.max_length,
            "pooling": pooling,
            "vllm_pooling": POOLERS[pooling],
            "pooler_config": pooler_config(pooling),
            "serve": serve_command(out.resolve(), pooling),
            "request": client,
            "run": str(run.root.resolve()),
            "base_model": info.base_model,
            "weights": info.weights,
            "verification": {"texts": len(features), "max_abs_output_diff": diff, "against": f"transformers {architecture}"},
            "versions": versions(),
        }
        (staging / VLLM_INFO).write_text(json.dumps(metadata, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if out.exists():  # empty (checked above): replaced by the finished folder
            out.rmdir()
        atomic_replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for line in report.lines() if log else ():
        log(line)
    return report
