"""`python -m lsllm.serve RUN_DIR ...`: the `lsllm serve` command on its own."""

import sys

from lsllm.serve.cli import main

sys.exit(main())
