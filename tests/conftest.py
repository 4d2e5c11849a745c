import torch
from hypothesis import settings

# Deterministic property tests: the same examples on every machine and every run.
settings.register_profile("book", deadline=None, derandomize=True, database=None, max_examples=40, print_blob=True)
settings.load_profile("book")

# The tensors of the tests are small: one thread is fastest, and it avoids contention on a shared machine.
torch.set_num_threads(1)
