"""One torch thread for a block of code (deterministic training runs), restoring the previous count."""

from __future__ import annotations

import torch


class one_thread:
    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)
