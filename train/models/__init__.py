"""The architecture registry (``create_model``, ``list_models``) and the project's model structure."""

from train.models import keras_contrastive, koch, pyimagesearch, resnet_pairs, vgg16_siamese  # noqa: F401 (register)
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
