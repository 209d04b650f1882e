"""Issue 15, training side: a finished run is never lost or appended to, nonsense arguments and datasets that lost
most of their pairs are refused where they enter, unwritable outputs fail at once, damaged model files are named,
and every training-side command line ends at one boundary (exit 70 for a bug, 130 for Ctrl-C/SIGTERM)."""

from __future__ import annotations

import importlib
import shutil
import signal
from pathlib import Path

import keras
import pytest

from tests.conftest import make_png
from train.cli import main as train_main
from train.evaluate import main as evaluate_main

TINY = "--arch keras-contrastive --data digits --steps-per-epoch 1 --batch-size 8 --val-pairs 20 --no-progress".split()


def _train(out: Path, *extra: str, epochs: int = 1) -> int:
    return train_main([*TINY, "--out", str(out), "--epochs", str(epochs), *extra])


def _history_epochs(run: Path) -> list[int]:
    return [int(r.split(",")[0]) for r in (run / "history.csv").read_text().splitlines()[1:]]


def _snapshot(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("model.keras", "model_card.json", "history.csv")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert _train(out) == 0
    return out


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    """A private copy of the finished run, for tests that try to overwrite it."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


# ------------------------------------------------------------------------------ a finished run is kept whole


def test_resume_on_a_finished_run_is_an_error_and_leaves_it(run, capsys):
    before = _snapshot(run)
    assert _train(run, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err and "finished run" in err, err
    assert _snapshot(run) == before


def test_force_replaces_a_finished_run_whole_never_appends(run):
    before = _snapshot(run)
    assert _train(run, "--force", "--seed", "1") == 0
    assert _history_epochs(run) == [0]  # the new run's one epoch, not both runs
    assert _snapshot(run)["model_card.json"] != before["model_card.json"]
    assert not list(run.parent.glob(".run.*"))  # no staging folder left beside it


def test_an_interrupted_replacement_keeps_the_old_run_and_resumes_beside_it(run, monkeypatch, capsys):
    before = _snapshot(run)
    real_fit = keras.Model.fit

    def fit_with_interrupt(self, *a, callbacks=None, **kw):
        return real_fit(self, *a, callbacks=[*callbacks, _Interrupt()], **kw)

    monkeypatch.setattr(keras.Model, "fit", fit_with_interrupt)
    assert _train(run, "--force", epochs=2) == 130
    assert "--resume" in capsys.readouterr().err
    assert _snapshot(run) == before  # the finished run is untouched while its replacement trains
    side = run.parent / ".run.training"
    assert (side / "checkpoints" / "backup").exists()  # the interrupted replacement is recognisable
    monkeypatch.setattr(keras.Model, "fit", real_fit)
    assert _train(run, "--force", "--resume", epochs=2) == 0
    assert _history_epochs(run) == [0, 1]  # epoch 0 before the interrupt, epoch 1 after it
    assert not side.exists() and not (run / "checkpoints" / "backup").exists()


def test_a_crash_while_writing_a_replacement_leaves_the_old_run(run, monkeypatch, capsys):
    import train.plots

    before = _snapshot(run)

    def broken_plot(*a, **kw):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(train.plots, "plot_roc", broken_plot)
    assert _train(run, "--force") == 70
    assert "unexpected RuntimeError: disk trouble" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_a_second_run_into_the_same_folder_is_refused_while_one_trains(run, capsys):
    from train.run_folder import locked

    before = _snapshot(run)
    with locked(run):  # as a run in another process holds it
        assert _train(run, "--force") == 2
    assert "another training run is writing there now" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_a_crash_before_the_card_leaves_no_finished_run(tmp_path, monkeypatch):
    import train.plots

    monkeypatch.setattr(train.plots, "plot_roc", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("x")))
    out = tmp_path / "run"
    assert _train(out) == 70
    assert not (out / "model_card.json").exists()  # the card is written last: no card, no finished run


# ------------------------------------------------------------------------------ arguments checked where they enter


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--lr", "-0.01", "a finite number > 0"),
        ("--lr", "nan", "a finite number > 0"),
        ("--batch-size", "0", "an integer >= 1"),
        ("--steps-per-epoch", "0", "an integer >= 1"),
        ("--val-fraction", "1.5", "a finite number in (0, 1)"),
        ("--epochs", "0", "an integer >= 1"),
        ("--same-group-negatives", "2", "a finite number in [0, 1]"),
        ("--target-far", "inf", "a finite number in (0, 1)"),
        ("--val-pairs", "1", "an integer >= 2"),
        ("--seed", "-1", "an integer >= 0"),
    ],
)
def test_training_refuses_numbers_out_of_range(tmp_path, capsys, option, value, expected):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        train_main([*TINY, "--out", str(out), option, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: '{value}': expected {expected}" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "option, value, expected",
    [("--far", "1.5", "(0, 1)"), ("--n-way", "1", ">= 2"), ("--pairs", "0", ">= 2"), ("--trials", "-1", ">= 0")],
)
def test_evaluate_refuses_numbers_out_of_range(capsys, option, value, expected):
    with pytest.raises(SystemExit) as e:
        evaluate_main(["--model", "m.keras", "--data", "digits", option, value])
    assert e.value.code == 2
    assert f"argument {option}: '{value}': expected" in (err := capsys.readouterr().err) and expected in err


def _pairs_csv(tmp_path: Path, rows: int, missing: int) -> Path:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(rows + 1):
        (imgs / f"{i}.png").write_bytes(make_png(i, 28))
    lines = ["path_a,path_b,label"]
    for i in range(rows):
        b = f"imgs/gone{i}.png" if i < missing else f"imgs/{i + 1}.png"
        lines.append(f"imgs/{i}.png,{b},{i % 2}")
    path = tmp_path / "pairs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_pair_list_that_lost_most_of_its_pairs_is_refused(tmp_path, capsys):
    from train.data import DatasetError, open_dataset

    csv_path = _pairs_csv(tmp_path, rows=40, missing=21)
    with pytest.raises(DatasetError, match=r"pairs\.csv: 21 of 40 pairs name a missing file.*more than half"):
        open_dataset(csv_path)
    out = tmp_path / "run"
    assert train_main([*TINY, "--data", str(csv_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pairs.csv: 21 of 40" in err and "Traceback" not in err
    assert not (out / "model_card.json").exists()


def test_pairs_whose_images_are_mostly_unreadable_are_refused(tmp_path):
    from runtime.preprocess import Preprocessing
    from train.data import DatasetError, load_pairs, open_dataset

    csv_path = _pairs_csv(tmp_path, rows=4, missing=0)
    for i in (2, 3, 4):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"pairs\.csv: 3 of 4 pairs hold an unreadable image \(first: .*png"):
        load_pairs(open_dataset(csv_path), Preprocessing(16, 16, color="gray"), progress=False)


def test_a_pair_list_that_lost_half_or_fewer_still_opens_with_a_warning(tmp_path):
    from train.data import DatasetWarning, open_dataset

    with pytest.warns(DatasetWarning, match="missing file skipped: 20 of 40"):
        assert len(open_dataset(_pairs_csv(tmp_path, rows=40, missing=20))) == 20


# ------------------------------------------------------------------------------ unwritable outputs fail at once


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert _train(blocker / "run") == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot write there" in err and "epoch" not in err


def test_read_only_out_fails_before_training(tmp_path, capsys):
    from test_camera_reliability import read_only_folder  # a 0555 folder, or sysfs where root writes anywhere

    ro = read_only_folder(tmp_path)
    try:
        assert _train(ro / "run") == 2
    finally:
        (tmp_path / "ro").chmod(0o755)
    err = capsys.readouterr().err
    assert f"--out {ro / 'run'}: cannot write there" in err and "epoch" not in err, err


def test_evaluate_unwritable_out_or_json_fails_before_scoring(finished_run, tmp_path, capsys, monkeypatch):
    import train.load

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    scored = []
    monkeypatch.setattr(train.load, "load_model", lambda *a, **kw: scored.append(1))
    model = str(finished_run / "model.keras")
    assert evaluate_main(["--model", model, "--data", "digits", "--out", str(blocker / "plots")]) == 2
    assert "--out" in capsys.readouterr().err
    assert evaluate_main(["--model", model, "--data", "digits", "--json", str(blocker / "r.json")]) == 2
    assert "--json" in capsys.readouterr().err
    assert not scored  # refused before the model was even loaded


# ------------------------------------------------------------------------------ damaged model files are named


def test_truncated_keras_archive_is_named_as_such(finished_run, tmp_path, capsys):
    from train.load import ModelLoadError, load_model

    data = (finished_run / "model.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"cut\.keras: a truncated or corrupt \.keras \(zip\) archive"):
        load_model(cut)
    assert evaluate_main(["--model", str(cut), "--data", "digits"]) == 2
    assert "cut.keras: a truncated or corrupt .keras" in capsys.readouterr().err


def test_truncated_h5_is_named(tmp_path):
    import h5py
    import numpy as np

    from train.load import ModelLoadError, load_model

    whole = tmp_path / "whole.h5"
    with h5py.File(whole, "w") as f:
        f.create_dataset("w", data=np.arange(20_000, dtype=np.float32))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[:4096])
    with pytest.raises(ModelLoadError, match=r"cut\.h5: a truncated or corrupt HDF5 \(\.h5\) file \(.*truncated"):
        load_model(cut)


# ------------------------------------------------------------------------------ one boundary for every command


MAINS = {  # every training-side command line -> the module whose main() it runs
    "train": "train.cli",
    "train.evaluate": "train.evaluate",
    "train.data": "train.data.__main__",
    "train.publish": "train.publish",
    "train.bench": "train.bench",
    "train.clipmaker": "train.clipmaker",
    "train.models": "train.models.__main__",
}


@pytest.mark.parametrize("name", list(MAINS))
def test_every_help_lists_the_exit_codes_and_debug(name, capsys):
    with pytest.raises(SystemExit) as e:
        importlib.import_module(MAINS[name]).main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {name}")  # train.models used to ignore --help and list instead
    for needle in ("exit codes:", "  0  ", "  2  ", "  70 ", "  130 ", "--debug"):
        assert needle in out, (name, needle)


def test_an_unexpected_error_is_one_line_and_exit_70(tmp_path, monkeypatch, capsys):
    import train.trainer

    def boom(*a, **kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr(train.trainer, "train", boom)
    assert _train(tmp_path / "run") == 70
    err = capsys.readouterr().err
    assert err.strip() == "error: unexpected RuntimeError: a bug (run again with --debug for the traceback)"
    assert _train(tmp_path / "run", "--debug") == 70
    assert "Traceback" in capsys.readouterr().err


def test_models_listing_runs_through_the_boundary(monkeypatch, capsys):
    import train.models

    models_main = importlib.import_module("train.models.__main__").main

    assert models_main([]) == 0
    assert "keras-contrastive" in capsys.readouterr().out
    monkeypatch.setattr(train.models, "list_models", lambda: 1 / 0)
    assert models_main([]) == 70
    assert "unexpected ZeroDivisionError" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupt_exits_130_and_says_how_to_resume(tmp_path, monkeypatch, capsys, how):
    import train.trainer

    def interrupted(*a, **kw):
        if how == "ctrl-c":
            raise KeyboardInterrupt
        # the handler run_cli installed, called as the signal would call it: a real SIGTERM to a pytest process with
        # TensorFlow's threads loaded can crash it (tests/test_export_build.py sends a real one to a subprocess)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler), "run_cli installed no SIGTERM handler"
        handler(signal.SIGTERM, None)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(train.trainer, "train", interrupted)
    assert _train(tmp_path / "run") == 130
    assert "--resume" in capsys.readouterr().err


def test_publish_refuses_a_target_it_would_destroy_before_any_work(finished_run, tmp_path, capsys):
    from train.publish import main as publish_main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    assert publish_main(["--run", str(finished_run), "--to", str(mine), "--data", "digits"]) == 2
    assert "is not a published model" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "the user's"
    assert publish_main(["--run", str(finished_run), "--to", str(finished_run), "--data", "digits"]) == 2
    assert "is the --run folder itself" in capsys.readouterr().err
    assert not (finished_run / "eval").exists()  # refused before evaluating anything


# ------------------------------------------------------------------------------ an evaluation's output, whole


def _evaluation(model: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--data", "digits", "--pairs", "200", "--trials", "20", "--n-way", "3"] + [
        "--no-progress",
        "--out",
        str(out),
        "--json",
        str(out / "r.json"),
        *extra,
    ]


def test_an_evaluation_killed_at_any_write_leaves_the_earlier_one_whole(finished_run, tmp_path, capsys):
    """--out with its plots, evaluation.json and an --json inside it appear all or nothing: killed (or out of
    disk) at each write, the folder holds the earlier evaluation byte for byte and no staging folder is left."""
    from faults import Faults, Killed, hidden_entries

    out = tmp_path / "eval"
    assert evaluate_main(_evaluation(finished_run / "model.keras", out, "--seed", "1")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["evaluation.json", "pairs.png", "r.json", "roc.png"]
    with Faults(tmp_path) as f:
        assert evaluate_main(_evaluation(finished_run / "model.keras", out)) == 0
    assert f.events[-1] == f"exchange {out}" and len(f.events) >= 10, f.events  # published by one swap
    assert {p.name: p.read_bytes() for p in out.iterdir()} != before and hidden_entries(tmp_path) == []
    new = {p.name: p.read_bytes() for p in out.iterdir()}
    for k in range(1, len(f.events) + 1):
        shutil.rmtree(out)
        out.mkdir()
        for name, data in before.items():
            (out / name).write_bytes(data)
        exc = OSError if k % 2 and not f.events[k - 1].startswith("mkdir") else Killed
        with Faults(tmp_path, fail_at=k, exc=exc):  # a kill is exit 130 at the command line, a full disk exit 2
            code = evaluate_main(_evaluation(finished_run / "model.keras", out))
        assert code == (130 if exc is Killed else 2), (k, f.events[k - 1], capsys.readouterr().err)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before, (k, f.events[k - 1])
        assert hidden_entries(tmp_path) == [], (k, f.events[k - 1])
    assert evaluate_main(_evaluation(finished_run / "model.keras", out)) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()}.keys() == new.keys()


def test_evaluate_replaces_only_an_evaluations_folder_and_never_its_inputs(finished_run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    model = finished_run / "model.keras"
    assert evaluate_main(["--model", str(model), "--data", "digits", "--out", str(mine)]) == 2
    assert "is not an evaluation's folder (no evaluation.json)" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "the user's"
    assert evaluate_main(["--model", str(model), "--data", "digits", "--out", str(finished_run)]) == 2
    assert "is not an evaluation's folder" in capsys.readouterr().err  # a training run is not replaced either
    copy = tmp_path / "eval"
    copy.mkdir()
    (copy / "evaluation.json").write_text("{}")
    shutil.copy(model, copy / "model.keras")
    assert evaluate_main(["--model", str(copy / "model.keras"), "--data", "digits", "--out", str(copy)]) == 2
    assert "--model" in (err := capsys.readouterr().err) and "lies inside --out" in err
    assert (copy / "model.keras").is_file()
