"""An interrupt a library mangles or swallows: the run still exits 130 and publishes nothing (runtime.interrupts).

Each case is what a real export met when SIGTERM came at an unlucky instant: inside tf2onnx's tracing, inside
``import onnxruntime`` (its __init__ turned the exception into "ImportError: initialization failed"), inside
TensorFlow's ``AtomicFunction.__del__`` (Python prints an exception raised in a finalizer and drops it)."""

from __future__ import annotations

import signal
import sys
import weakref

import pytest

from runtime import interrupts
from runtime.console import EXIT_INTERRUPTED, run_cli
from runtime.fileio import atomic_dir


def deliver(signum: int) -> None:
    """What the interpreter does on a signal: call the handler in force (run_cli's) with the interrupted frame."""
    signal.getsignal(signum)(signum, sys._getframe(1))


def test_a_folder_staged_while_an_interrupt_was_swallowed_is_not_published(tmp_path, capsys):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("the previous bundle")

    def body() -> int:
        with atomic_dir(target) as stage:
            (stage / "new.txt").write_text("half of a new bundle")
            try:
                deliver(signal.SIGTERM)
            except BaseException:
                pass  # a library that swallows what it meets
            (stage / "more.txt").write_text("the rest")
        return 0

    assert run_cli(body, what="not exported") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted (SIGTERM): not exported; nothing half-written was left\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging folder left either
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    # the run's interrupt ended with it: the same process publishes again (a program that ran a command, then the API)
    with atomic_dir(target) as stage:
        (stage / "new.txt").write_text("a later, whole bundle")
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_an_import_the_interrupt_broke_exits_130_not_a_missing_extra(capsys):
    def body() -> int:
        try:
            deliver(signal.SIGINT)
        except BaseException as e:
            raise ImportError("initialization failed") from e  # onnxruntime/__init__.py's wrapping
        return 0

    assert run_cli(body) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted (Ctrl-C); nothing half-written was left\n"
    with pytest.raises(ImportError, match="no module here"):  # without an interrupt it stays a missing extra
        run_cli(lambda: (_ for _ in ()).throw(ImportError("no module here")))


def test_deferred_raises_when_the_library_step_returns(capsys):
    steps: list[str] = []

    def body() -> int:
        with interrupts.deferred("converting embedding.onnx"):
            deliver(signal.SIGTERM)  # noted, not raised inside the library
            steps.append("the conversion went on")
        steps.append("never reached")
        return 0

    assert run_cli(body) == EXIT_INTERRUPTED
    assert steps == ["the conversion went on"]
    assert "interrupted (SIGTERM)" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["__del__", "weakref callback"])
def test_an_interrupt_python_drops_in_a_finalizer_is_quiet_and_still_stops_the_publish(tmp_path, capsys, where):
    """Python prints an exception raised in __del__ or a weakref callback and drops it: no traceback is printed,
    the folder staged meanwhile is not published, and the exit is 130."""

    class Finalized:
        def __del__(self) -> None:
            deliver(signal.SIGTERM)

    class Referent:
        pass

    reached: list[str] = []
    refs: list = []

    def body() -> int:
        with atomic_dir(tmp_path / "bundle") as stage:
            (stage / "half.txt").write_text("staged while the interrupt came")
            if where == "__del__":
                Finalized()
            else:
                obj = Referent()
                refs.append(weakref.ref(obj, lambda _: deliver(signal.SIGTERM)))
                del obj
            reached.append("after the finalizer")
        reached.append("never: the publish raised the interrupt")
        return 0

    assert run_cli(body) == EXIT_INTERRUPTED
    assert reached == ["after the finalizer"]
    err = capsys.readouterr().err
    assert err == "interrupted (SIGTERM); nothing half-written was left\n", err
    assert list(tmp_path.iterdir()) == []
    assert sys.unraisablehook is not interrupts.on_unraisable  # run_cli put the previous hook back
