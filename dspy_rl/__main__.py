import sys

from dspy_rl.cli import main

sys.exit(main())
