"""``python -m train.models``: list the registered architectures."""

from train.models import get_entry, list_models

for name in list_models():
    e = get_entry(name)
    print(f"{name:18s} {e.summary}  [{e.source}]")
