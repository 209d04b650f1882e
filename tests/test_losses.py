"""train.losses: the contrastive loss against hand-computed values, its config, and loss_for."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from runtime.preprocess import Preprocessing
from train.losses import ContrastiveLoss, loss_for
from train.models.common import score_for
from train.models.siamese import SiameseConfig

D = np.array([0.2, 0.3, 1.5, 0.9], np.float32)
SAME = np.array([True, False, True, False])


def _value(loss: keras.losses.Loss, y_true, y_pred) -> float:
    return float(keras.ops.convert_to_numpy(loss(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32))))


def _hand(d: np.ndarray, same: np.ndarray, margin: float) -> float:
    terms = [di**2 if s else max(margin - di, 0.0) ** 2 for di, s in zip(d.tolist(), same.tolist())]
    return float(np.mean(terms))


def test_hand_computed_value_label_0_is_same() -> None:
    y = (~SAME).astype(np.float32)  # keras.io: 0 = same
    # same: 0.2^2 and 1.5^2; different: (1 - 0.3)^2 and (1 - 0.9)^2
    expected = (0.04 + 0.49 + 2.25 + 0.01) / 4
    assert _hand(D, SAME, 1.0) == pytest.approx(expected)
    assert _value(ContrastiveLoss(margin=1.0, label_same=0), y, D) == pytest.approx(expected, rel=1e-6)


def test_hand_computed_value_label_1_is_same() -> None:
    y = SAME.astype(np.float32)
    expected = (0.04 + 0.49 + 2.25 + 0.01) / 4
    assert _value(ContrastiveLoss(margin=1.0, label_same=1), y, D) == pytest.approx(expected, rel=1e-6)


def test_conventions_disagree_on_the_same_targets() -> None:
    y = SAME.astype(np.float32)
    a = _value(ContrastiveLoss(label_same=1), y, D)
    b = _value(ContrastiveLoss(label_same=0), y, D)
    assert a == pytest.approx(_hand(D, SAME, 1.0), rel=1e-6)
    assert b == pytest.approx(_hand(D, ~SAME, 1.0), rel=1e-6)
    assert a != pytest.approx(b)


def test_margin_changes_only_negative_terms() -> None:
    y = (~SAME).astype(np.float32)
    expected = (0.04 + (2 - 0.3) ** 2 + 2.25 + (2 - 0.9) ** 2) / 4
    assert _value(ContrastiveLoss(margin=2.0), y, D) == pytest.approx(expected, rel=1e-6)
    # negatives beyond the margin cost nothing, positives at distance 0 cost nothing
    assert _value(ContrastiveLoss(margin=0.5), [1.0, 1.0, 0.0], [0.6, 3.0, 0.0]) == 0.0


def test_column_predictions_and_integer_targets() -> None:
    loss = ContrastiveLoss(label_same=0)
    flat = _value(loss, (~SAME).astype(np.float32), D)
    col = float(keras.ops.convert_to_numpy(loss(np.asarray(~SAME, np.int32).reshape(-1, 1), D.reshape(-1, 1))))
    assert col == pytest.approx(flat, rel=1e-6)


@pytest.mark.parametrize("margin", [0.0, -1.0])
def test_margin_must_be_positive(margin: float) -> None:
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=margin)


def test_label_same_must_be_0_or_1() -> None:
    with pytest.raises(ValueError, match="label_same 2"):
        ContrastiveLoss(label_same=2)


def test_config_round_trip() -> None:
    loss = ContrastiveLoss(margin=1.7, label_same=1, name="my_contrastive")
    cfg = loss.get_config()
    assert cfg["margin"] == 1.7 and cfg["label_same"] == 1 and cfg["name"] == "my_contrastive"
    y, d = SAME.astype(np.float32), D
    for other in (ContrastiveLoss.from_config(cfg), keras.losses.deserialize(keras.losses.serialize(loss))):
        assert isinstance(other, ContrastiveLoss)
        assert (other.margin, other.label_same, other.name) == (1.7, 1, "my_contrastive")
        assert _value(other, y, d) == pytest.approx(_value(loss, y, d), rel=1e-7)


def _config(loss: str, margin: float | None = None, label_same: int | None = None) -> SiameseConfig:
    score, default_label = score_for(loss, margin)
    return SiameseConfig(
        arch="test",
        preprocessing=Preprocessing(28, 28, color="gray"),
        score=score,
        head="learned" if loss == "bce" else "euclidean",
        loss=loss,
        label_same=default_label if label_same is None else label_same,
        embedding_dim=8,
        margin=margin,
    )


def test_loss_for_bce() -> None:
    loss = loss_for(_config("bce"))
    assert isinstance(loss, keras.losses.BinaryCrossentropy)
    p = np.array([0.9, 0.2], np.float32)
    expected = -(np.log(0.9) + np.log(0.8)) / 2
    assert _value(loss, [1.0, 0.0], p) == pytest.approx(expected, rel=1e-5)


def test_loss_for_contrastive_takes_margin_and_convention() -> None:
    loss = loss_for(_config("contrastive", margin=2.0))
    assert isinstance(loss, ContrastiveLoss)
    assert (loss.margin, loss.label_same) == (2.0, 0)
    loss1 = loss_for(_config("contrastive", margin=0.5, label_same=1))
    assert (loss1.margin, loss1.label_same) == (0.5, 1)
    default = loss_for(_config("contrastive"))
    assert default.margin == 1.0


def test_loss_for_a_registered_model() -> None:
    from train.models import create_model

    cfg = create_model("keras-contrastive", margin=1.5).config
    loss = loss_for(cfg)
    assert isinstance(loss, ContrastiveLoss) and (loss.margin, loss.label_same) == (1.5, 0)
