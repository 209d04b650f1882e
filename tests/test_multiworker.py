"""``--strategy multiworker`` for real: two worker processes on 127.0.0.1 (TF_CONFIG, free ports) train one model
with tf.distribute.MultiWorkerMirroredStrategy, each on its own shard; only the chief writes the run; a run stopped
by SIGTERM resumes on both workers; a worker whose chief refused says so; the optimizer averages the replicas'
gradients. Every process is bounded by a timeout and killed when a test fails."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from train.distributed import shard_items
from train.loopback import LoopbackCluster

ROOT = Path(__file__).resolve().parents[1]
RECIPE = [
    *"--arch keras-contrastive --data digits --epochs 2 --steps-per-epoch 5 --batch-size 32 --val-pairs 100".split(),
    "--strategy",
    "multiworker",
    "--no-progress",
]
TIMEOUT = 150  # seconds for a whole two-worker run (measured here: about 20 s on 2 busy cores)
SHARD_LINE = re.compile(r"reads its shard: (\d+) of (\d+) training images \(ids sha256 ([0-9a-f]+)\)")


@pytest.fixture
def cluster(tmp_path):
    started: list[LoopbackCluster] = []

    def start(args: list[str], name: str = "w") -> LoopbackCluster:
        started.append(LoopbackCluster(args, tmp_path / name, cwd=ROOT))
        return started[-1]

    yield start
    for c in started:  # a failed test leaves no worker behind
        c.kill()


def _finish(workers: LoopbackCluster) -> None:
    codes = workers.wait(TIMEOUT)
    assert codes == [0, 0], f"exit codes {codes} after {workers.wall_seconds:.0f} s:\n{workers.output()}"


def test_shards_are_disjoint_cover_the_index_and_hold_every_class():
    labels = np.repeat(np.arange(10), 7)[np.random.default_rng(0).permutation(70)]
    shards = [shard_items(labels, i, 3) for i in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(70))
    for s in shards:
        assert set(labels[s]) == set(range(10))
        assert np.all(np.diff(s) > 0)


def test_the_optimizer_applies_the_mean_gradient_of_the_global_batch():
    """The step under strategy.run on 2 replicas (MirroredStrategy over 2 logical CPUs: the same Keras code path,
    SUM all-reduce of gradients of a loss divided by the replicas) moves the weights as one device does on the
    whole batch."""
    script = textwrap.dedent(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, numpy as np
        from train.distributed import train_step

        def build():
            inp = keras.Input((4,))
            return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, "relu")(inp)))

        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(16, 4)).astype("float32"), (rng.random(16) > 0.5).astype("float32")
        one = build()
        start = one.get_weights()
        opt = keras.optimizers.SGD(0.5)
        with tf.GradientTape() as tape:
            loss = keras.losses.BinaryCrossentropy()(y, one(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, one.trainable_variables), one.trainable_variables))
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            two = build()
            two.set_weights(start)
            opt2 = keras.optimizers.SGD(0.5)
            opt2.build(two.trainable_variables)
        data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(16))
        loss2 = train_step(strategy, two, keras.losses.BinaryCrossentropy(), opt2)(iter(data))
        np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-5)
        for a, b in zip(two.get_weights(), one.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(one.get_weights()[0], start[0])
        print("SAME", strategy.num_replicas_in_sync)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SAME 2" in out.stdout


def test_two_loopback_workers_train_one_model_and_only_the_chief_writes_it(cluster, tmp_path):
    out = tmp_path / "run"
    workers = cluster([*RECIPE, "--out", str(out)])
    _finish(workers)
    logs = [workers.output(i, tail=0) for i in range(2)]
    card = json.loads((out / "model_card.json").read_text())
    t = card["training"]
    assert (t["strategy"], t["loop"], t["workers"], t["replicas"]) == ("multiworker", "strategy.run", 2, 2)
    assert t["epochs_run"] == 2 and t["steps_per_second"] > 0
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints",
        "history.csv",
        "model.keras",
        "model_card.json",
        "model_card.md",
        "plots",
    ]
    assert not list(tmp_path.glob(".run*"))  # no staging sibling left
    for d in workers.tmpdirs:  # the other worker's temporary run folder is gone
        assert not list(d.iterdir()), list(d.iterdir())
    assert "model card:" in logs[0] and "trained on shard 1 of 2, done" in logs[1]
    # one model: the same reduced loss, and the same validation metrics (BatchNormalization statistics averaged)
    epochs = [[line for line in log.splitlines() if line.startswith("epoch ")] for log in logs]
    assert len(epochs[0]) == 2 and epochs[0] == epochs[1], epochs
    # each worker read its own half of the training images
    shards = [SHARD_LINE.search(log) for log in logs]
    assert all(shards), workers.output()
    (n0, total, d0), (n1, total1, d1) = (m.groups() for m in shards)
    assert total == total1 == str(card["data"]["split"]["train_items"])
    assert int(n0) + int(n1) == int(total) and d0 != d1
    # the chief's model reloads and scores pairs
    from train.load import load_model

    siamese = load_model(out / "model.keras")
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    scores = siamese.score_embeddings(siamese.embed(x), siamese.embed(x[::-1]))
    assert scores.shape == (4,) and np.all(np.isfinite(scores))
    assert siamese.config.score.threshold == card["config"]["score"]["threshold"]


def test_a_run_stopped_by_sigterm_resumes_on_both_workers(cluster, tmp_path):
    """SIGTERM to the chief (TensorFlow's own SIGTERM handler would have it train on) stops it with the run kept
    for --resume (exit 130); the other worker then exits 3; both resume from the chief's backup."""
    out = tmp_path / "run"
    args = [*RECIPE, "--out", str(out), "--epochs", "3", "--steps-per-epoch", "30"]
    first = cluster(args, "first")
    meta, history = out / "checkpoints" / "backup" / "training_metadata.json", out / "history.csv"
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and first.poll():
        if meta.exists() and history.exists() and len(history.read_text().splitlines()) >= 2:
            break  # the chief has backed up epoch 0 (and logged it): stop it now
        time.sleep(0.05)
    else:
        first.kill()
        pytest.fail(f"no backup of the first epoch appeared:\n{first.output()}")
    first.procs[0].send_signal(signal.SIGTERM)
    assert first.wait(TIMEOUT) == [130, 3], first.output()
    assert "--resume" in first.output(0)
    assert json.loads(meta.read_text())["epoch"] == 1, first.output()
    assert not (out / "model.keras").exists()
    second = cluster([*args, "--resume"], "second")
    _finish(second)
    epochs = [int(r.split(",")[0]) for r in history.read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2], (epochs, second.output())  # epoch 0 before the stop, epochs 1-2 after it
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["epochs_run"] == 3
    assert not (out / "checkpoints" / "backup").exists()


def test_when_the_chief_refuses_the_other_worker_says_so_and_exits_3(cluster, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_text("a finished run's model")
    workers = cluster([*RECIPE, "--out", str(out)])
    codes = workers.wait(TIMEOUT)
    assert codes == [2, 3], workers.output()
    assert "pass --force" in workers.output(0)
    assert "another worker of the cluster stopped or cannot be reached" in workers.output(1)
    assert (out / "model.keras").read_text() == "a finished run's model"
