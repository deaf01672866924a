"""`python -m harness.cli ...` is `lora-harness ...`."""

import sys

from harness.cli import main

sys.exit(main())
