import os

import torch

os.environ.setdefault("HYPOTHESIS_PROFILE", "dev")
# Tests use tiny tensors: one intra-op thread avoids thread start-up/spin costs on small CI machines.
torch.set_num_threads(1)
