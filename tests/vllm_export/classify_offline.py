"""Run by the vLLM venv's python (not by pytest): `LLM.classify` on exported checkpoints, one engine each.

    .venv/vllm/bin/python tests/vllm_export/classify_offline.py JOBS.json RESULTS.json

JOBS.json: a JSON list of {"model": folder, "inputs": [str], "pooler_config": {...}, "engine": {LLM kwargs}};
RESULTS.json: a JSON list, per job, of each input's vLLM output (``outputs.probs``: probabilities, or
the value). Files, not stdin/stdout: vLLM logs to stdout. One process for every job, so vLLM is
imported once (most of its start-up time on a CPU).
"""

import gc
import json
import sys


def main() -> None:
    from vllm import LLM
    from vllm.config import PoolerConfig

    results = []
    with open(sys.argv[1], encoding="utf-8") as jobs:
        todo = json.load(jobs)
    for job in todo:
        llm = LLM(model=job["model"], runner="pooling", pooler_config=PoolerConfig(**job["pooler_config"]), **job["engine"])
        results.append([output.outputs.probs for output in llm.classify(job["inputs"], use_tqdm=False)])
        del llm
        gc.collect()
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(results, out)


if __name__ == "__main__":  # vLLM starts its workers with spawn: they import this file again
    main()
