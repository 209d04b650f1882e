"""``python -m train.publish``: a finished run is evaluated, its curve plotted, and model + card copied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.model_card import render_markdown
from train.publish import main as publish_main
from train.trainer import TrainOptions, train

SMALL = ["--data", "digits", "--n-way", "5", "--trials", "60", "--lake-runs", "2", "--pairs", "200"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("publish") / "run"
    opts = TrainOptions(
        arch="keras-contrastive", data="digits", out=str(out), epochs=2, steps_per_epoch=20, batch_size=64,
        lr=1e-2, val_pairs=300, progress=False, seed=0, snapshot_every=1,
    )
    train(opts)
    return out


def test_publish_evaluates_every_snapshot_and_copies_model_card_and_plots(run: Path, tmp_path: Path):
    to = tmp_path / "published"
    assert publish_main(["--run", str(run), "--to", str(to), *SMALL]) == 0
    card = json.loads((to / "model_card.json").read_text())
    ev = card["evaluation"]
    assert [p["epoch"] for p in ev["accuracy_vs_minutes"]] == [1, 2, 2]  # two snapshots, then the final model
    acc = ev["within_alphabet_5_way_1_shot"]
    assert acc["trials"] == 60 and 0.0 <= acc["accuracy"] <= 1.0
    assert acc["command"].startswith("python -m train.evaluate --model " + str(to / "model.keras"))
    assert ev["lake_runs"]["trials"] == 2 * 5
    assert card["metrics"]["evaluation"]["5_way_1_shot accuracy"] == acc["accuracy"]
    assert (to / "model_card.md").read_text() == render_markdown(card)
    for rel in card["plots"].values():
        assert (to / rel).stat().st_size > 1000
    assert (to / "model.keras").read_bytes() == (run / "model.keras").read_bytes()

    again = tmp_path / "again"  # another run's curve drawn beside this one's
    assert publish_main(["--run", str(run), "--to", str(again), *SMALL, "--compare", f"first={to}"]) == 0


def test_publish_refuses_a_bad_compare_before_doing_any_work(run: Path, tmp_path: Path, capsys):
    missing = tmp_path / "nothing-here"
    assert publish_main(["--run", str(run), "--to", str(tmp_path / "x"), *SMALL, "--compare", f"a={missing}"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as e:
        publish_main(["--run", str(run), "--to", str(tmp_path / "x"), "--compare", "no-equals-sign"])
    assert e.value.code == 2
