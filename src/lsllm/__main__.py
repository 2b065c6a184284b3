import sys

from lsllm.cli import main

sys.exit(main())
