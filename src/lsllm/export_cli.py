"""`lsllm export RUN OUT [--format onnx|vllm] [--int8]`: the export command's command line (see lsllm.export).

    lsllm export runs/sst2-... exported/                 # exported/model.onnx + tokenizer + lsllm-export.json
    lsllm export runs/conll03-... exported/ --int8       # also exported/model.int8.onnx (dynamic int8 weights)
    lsllm export runs/sst2-... for-vllm/ --format vllm   # a checkpoint `vllm serve for-vllm --runner pooling` loads
"""

from __future__ import annotations

import argparse
import sys

FORMATS = ("onnx", "vllm")  # lsllm.export.FORMATS (not imported here: `lsllm --help` should not load torch)
DESCRIPTION = ("Export a trained run. onnx (default): an ONNX graph (input_ids, attention_mask -> logits; dynamic batch "
               "and sequence length) with its tokenizer and lsllm-export.json, checked against PyTorch on a few texts; "
               "needs onnx and onnxruntime: pip install 'lsllm[onnx]'. vllm: the merged classifier as the family's stock "
               "*ForSequenceClassification checkpoint for `vllm serve OUT --runner pooling` (/classify) and "
               "LLM.classify, with lsllm-vllm.json (the prompt the caller applies, labels, problem type); the serve "
               "command and a client call are printed. See docs/serving.md.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` command to the `lsllm` parser's subcommands."""
    export = subparsers.add_parser(
        "export", help="export a trained run to ONNX (for ONNX Runtime, optionally int8) or for vLLM",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  lsllm export runs/X exported/\n  lsllm export runs/X exported-int8/ --int8\n"
               "  lsllm export runs/X for-vllm/ --format vllm")
    export.add_argument("run_dir", help="a finished `lsllm train` output directory")
    export.add_argument("out_dir", help="a new (or empty) folder to write")
    export.add_argument("--format", choices=FORMATS, default="onnx",
                        help="onnx (default): ONNX Runtime; vllm: a checkpoint vLLM serves (docs/serving.md)")
    export.add_argument("--int8", action="store_true",
                        help="also write model.int8.onnx: int8 weights per output channel, the MLP output projections and the "
                             "head fp32 (ONNX Runtime dynamic quantization; docs/serving.md)")
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from lsllm.export import export_run

    report = export_run(args.run_dir, args.out_dir, fmt=args.format, int8=args.int8)
    for line in report.lines():
        sys.stdout.write(line + "\n")
    for line in report.warnings():
        sys.stderr.write(f"warning: {line}\n")
    return 0
