"""lora-limits: an executable test and reduction harness for the fine-grained complexity of
attention and LoRA adapter gradients (Alman-Song 2023/2024; Hu et al., ICLR 2025).

Data flows one way: generate -> Instance -> solver -> Result -> check / fit / plot.
"""

from harness.errors import HarnessError
from harness.instance import ADAPTABLE, Instance

__all__ = ["ADAPTABLE", "HarnessError", "Instance"]
__version__ = "0.1.0"
