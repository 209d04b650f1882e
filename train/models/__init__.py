"""The architecture registry (``create_model``, ``list_models``) and the project's model structure."""

from train.models import (  # noqa: F401 (register)
    keras_contrastive,
    koch,
    omniglot_conv,
    pyimagesearch,
    resnet_pairs,
    vgg16_siamese,
)
from train.models.layers import CUSTOM_OBJECTS, AbsDifference, EuclideanDistance, L2Normalize
from train.models.registry import create_model, get_entry, list_models, register_model
from train.models.siamese import Siamese, SiameseConfig

__all__ = [
    "CUSTOM_OBJECTS",
    "AbsDifference",
    "EuclideanDistance",
    "L2Normalize",
    "Siamese",
    "SiameseConfig",
    "create_model",
    "get_entry",
    "list_models",
    "register_model",
]

# models trained with a project loss carry it in their compile config: register the losses for loading
from train import losses as _losses  # noqa: E402, F401
