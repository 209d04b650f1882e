"""Inference backends: one file each (``<name>_backend.py``), each registering its variants in ``base``'s registry.

import runtime.backends as b
print(b.registry())          # every variant, its precisions, and whether it is present here (and why not)
"""

from runtime.backends.base import registry

__all__ = ["registry"]
