import os

import pytest

os.environ.setdefault("HYPOTHESIS_PROFILE", "dev")
