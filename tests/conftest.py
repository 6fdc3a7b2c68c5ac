"""Test-suite settings: one torch thread (tiny models run faster without thread hand-offs, and
results do not depend on the machine's core count)."""
import torch

torch.set_num_threads(1)
