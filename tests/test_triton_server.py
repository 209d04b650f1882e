"""A real Triton Inference Server (the nvidia-pytriton wheel's tritonserver, Python backend) serving a real bundle.

The repository is written by export.triton from the digits bundle test_runtime_verifier.py trains; the server runs
on 127.0.0.1 on free ports (runtime.serve.TritonServer). Checked: embeddings and scores from the server equal the
in-process runtime's within the FP32 tolerances (gRPC and HTTP); 8 clients x 200 requests, every answer checked;
the metrics endpoint shows dynamic batching formed batches larger than 1; a server killed mid-load makes every
client fail with a RemoteError in bounded time; a replaced bundle reloads, a tampered one is refused naming the
file; the serve command's Ctrl-C/SIGTERM leaves no process. Skipped, with the reason, where no tritonserver exists.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.parity import FP32_TOLERANCES
from runtime.serve import ServerError, TritonServer, find_server, free_port
from tests.test_runtime_verifier import _parity_cache, digits_uint8, trained_bundle  # noqa: F401 (a private cache)

ROOT = Path(__file__).resolve().parents[1]
NAME = "digits"
MODEL = f"{NAME}_runtime"

try:
    SERVER = find_server()
    WHY_NOT = ""
except ServerError as e:
    SERVER, WHY_NOT = None, str(e)
needs_server = pytest.mark.skipif(SERVER is None, reason=f"needs a tritonserver: {WHY_NOT}")
remote = pytest.importorskip("runtime.remote")
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (the dev extra) is the client")
pytest.importorskip("tritonclient.http", reason="tritonclient[http] (nvidia-pytriton brings it) is the HTTP client")


def write_repo(bundle: Path, repo: Path, **kwargs) -> Path:
    from export.triton import write_triton_repository
    from runtime.bundle.manifest import load_manifest

    m = load_manifest(bundle)
    kwargs.setdefault("max_batch_size", 32)
    kwargs.setdefault("preferred_batch_sizes", (8, 32))
    return write_triton_repository(bundle, repo, NAME, m.preprocessing.input_shape, m.embedding_dim, **kwargs)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return trained_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def local(bundle):
    return runtime.load(bundle, backend="onnxruntime", precision="fp32")


@pytest.fixture(scope="module")
def repo(bundle, tmp_path_factory) -> Path:
    return write_repo(bundle, tmp_path_factory.mktemp("triton") / "repo")


@pytest.fixture(scope="module")
def server(repo):
    if SERVER is None:
        pytest.skip(f"needs a tritonserver: {WHY_NOT}")
    s = TritonServer(repo)
    s.start()
    try:
        s.wait_ready(90)
        assert s.model_states() == {MODEL: "READY"}, s.model_reasons()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def images():
    x, y = digits_uint8()
    return x[:64], y[:64]


def _close(got, want, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    if want.size and "embedding" in what:
        rel = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
        assert rel <= FP32_TOLERANCES.embedding_rel, f"{what}: relative error {rel:.3g}"
    elif want.size:
        err = np.abs(got - want).max()
        assert err <= FP32_TOLERANCES.score_abs, f"{what}: score error {err:.3g}"


# ---------------------------------------------------------------------------------------------------------------
# what needs no server
# ---------------------------------------------------------------------------------------------------------------


def test_no_server_anywhere_is_one_clear_error(monkeypatch):
    import runtime.serve as serve

    monkeypatch.setattr(serve, "_wheel_root", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServerError) as e:
        serve.find_server()
    assert "nvidia-pytriton" in str(e.value) and "tritonserver on PATH" in str(e.value)
    assert subprocess.run(
        [sys.executable, "-m", "runtime.serve", "--repo", "x", "--binary", "/nonexistent"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    ).returncode == 3  # fmt: skip


def test_importing_the_client_does_not_import_tritonclient():
    code = "import sys, runtime.remote, runtime.serve; print('tritonclient' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_unreachable_server_fails_fast_after_bounded_retries():
    port = free_port()
    for url in (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"):
        t = time.monotonic()
        with pytest.raises(remote.RemoteError, match=rf"127.0.0.1:{port} model 'm'.*failed after 3 attempts"):
            remote.connect(url, "m", timeout=2, retries=2, backoff=0.05)
        assert time.monotonic() - t < 10
    with pytest.raises(ValueError, match="retries"):
        remote.connect(f"127.0.0.1:{port}", "m", retries=-1)


# ---------------------------------------------------------------------------------------------------------------
# the real server
# ---------------------------------------------------------------------------------------------------------------


@needs_server
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_server_answers_equal_the_in_process_runtime(server, local, bundle, images, protocol):
    from runtime.bundle.reference import Reference

    url = server.grpc_url if protocol == "grpc" else f"http://{server.http_url}"
    with remote.connect(url, MODEL, timeout=30) as v:
        assert v.spec == local.spec and v.dim == local.dim and v.model_id == local.model_id
        assert v.preprocessing == local.preprocessing
        ref = Reference.load(bundle / "reference.npz")
        e = v.embed_preprocessed(ref.inputs)  # more rows than max_batch_size: chunked
        _close(e, local.embed_preprocessed(ref.inputs), "embedding of the reference inputs")
        assert isinstance(e, runtime.Embedding) and e.model == local.model_id
        s = v.score_embeddings(e[ref.pair_a], e[ref.pair_b])
        _close(s, local.score_embeddings(e[ref.pair_a], e[ref.pair_b]), "scores of the reference pairs")

        x, _ = images
        a, b = list(x[:10]), list(x[10:20])
        _close(v.score(a, b), local.score(a, b), "pair scores of images")
        assert v.verify(a, b) == local.verify(a, b)  # VerifyResult: score (within float32 here), decision, meaning
        one = v.verify(x[0], x[1])
        assert isinstance(one, runtime.VerifyResult) and one == local.verify(x[0], x[1])
        _close(v.score(x[0], b), local.score(x[0], b), "one image against many")
        refe = v.embed(x[0])
        assert refe.shape == (local.dim,)
        _close(refe, local.embed(x[0]), "embedding of one image")
        _close(v.score(refe, b), local.score(refe, b), "an embedding against images")
        _close(v.score(b, local.embed(x[0])), local.score(b, local.embed(x[0])), "images against a local embedding")
        _close(v.score([refe, x[2]], [x[3], refe]), local.score([refe, x[2]], [x[3], refe]), "mixed lists")
        with pytest.raises(ValueError, match="cannot pair 2 with 3"):
            v.score(a[:2], b[:3])


@needs_server
def test_a_bad_request_is_a_clear_error_not_retried(server):
    import tritonclient.grpc as g

    c = g.InferenceServerClient(server.grpc_url)
    x = np.zeros((2, 4), np.float32)
    inputs = [g.InferInput("embedding_in_a", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(x)
    with pytest.raises(Exception, match="unexpected shape|dims"):
        c.infer(MODEL, inputs)
    with remote.connect(server.grpc_url, MODEL) as v:
        with pytest.raises(ValueError, match=r"embedding of shape \(3,\)"):
            v.score(np.zeros(3, np.float32), np.zeros(3, np.float32))


def _metric(text: str, name: str, model: str) -> float:
    total = 0.0
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} ([0-9.e+]+)$", text, re.M):
        if f'model="{model}"' in m.group(1):
            total += float(m.group(2))
    return total


@needs_server
def test_8_clients_x_200_requests_every_answer_checked_and_batched(server, local, images):
    x, _ = images
    emb = local.embed(list(x))
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(x), (8, 200, 2))
    want = local.score_embeddings(emb[pairs[..., 0].ravel()], emb[pairs[..., 1].ravel()]).reshape(8, 200)
    before = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    v = remote.connect(server.grpc_url, MODEL, timeout=30)  # one verifier shared by the 8 threads

    def client(k: int) -> list[tuple[float, bool]]:
        return [(r.score, r.match) for r in (v.verify(x[i], x[j]) for i, j in pairs[k])]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, k) for k in range(8)]
        got = [f.result(timeout=120) for f in futures]
    v.close()
    scores = np.array([[s for s, _ in row] for row in got])
    matches = np.array([[m for _, m in row] for row in got])
    assert scores.shape == (8, 200)  # nothing lost
    err = np.abs(scores - want).max()
    assert err <= FP32_TOLERANCES.score_abs, f"max score error {err:.3g} over 1600 answers"
    assert (matches == local.spec.is_match(want)).all()

    after = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    requests = _metric(after, "nv_inference_request_success", MODEL) - _metric(
        before, "nv_inference_request_success", MODEL
    )
    executions = _metric(after, "nv_inference_exec_count", MODEL) - _metric(before, "nv_inference_exec_count", MODEL)
    assert requests == 1600
    assert executions < requests, f"{requests:.0f} requests in {executions:.0f} executions: no batch was formed"
    stats = server._get(f"/v2/models/{MODEL}/stats")[1].decode()
    sizes = [int(b) for b in re.findall(r'"batch_size":(\d+)', stats)]
    assert max(sizes) > 1, f"batch sizes executed: {sorted(set(sizes))}"


@needs_server
def test_server_killed_mid_load_fails_every_client_clearly(repo):
    s = TritonServer(repo)
    s.start()
    try:
        s.wait_ready(90)
        v = remote.connect(s.grpc_url, MODEL, timeout=5, retries=2, backoff=0.1)
        x = np.zeros((1, *v.preprocessing.input_shape), np.float32)
        outcome: dict[int, str] = {}
        stop = time.monotonic() + 60

        def client(k: int) -> None:
            try:
                while time.monotonic() < stop:
                    v.embed_preprocessed(x)
                outcome[k] = "never failed"
            except remote.RemoteError as e:
                outcome[k] = str(e)
            except Exception as e:  # noqa: BLE001 - anything else is the failure this test looks for
                outcome[k] = f"unexpected {type(e).__name__}: {e}"

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        killed = time.monotonic()
        s.kill()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "a client hung after the server died"
        assert time.monotonic() - killed < 30
        assert len(outcome) == 4
        for msg in outcome.values():
            assert msg.startswith(f"grpc://{s.grpc_url} model '{MODEL}': embedding 1 image(s) failed"), msg
        v.close()
    finally:
        s.stop()
    assert _group_gone(s.process.pid)  # the whole group is gone: no stub left behind


@needs_server
def test_replaced_bundle_reloads_and_a_tampered_one_is_refused(bundle, tmp_path):
    import tritonclient.grpc as g
    from tritonclient.utils import InferenceServerException

    from runtime.bundle.manifest import load_manifest, write_manifest

    mine = tmp_path / "bundle" / NAME
    shutil.copytree(bundle, mine)
    repo = write_repo(mine, tmp_path / "repo")
    with TritonServer(repo) as s:
        s.wait_ready(90)
        old = remote.connect(s.grpc_url, MODEL).spec.threshold
        m = load_manifest(mine)
        new = old * 0.5
        write_manifest(mine, replace(m, score=m.score.with_threshold(new, "replaced in a test")), relist=False)
        write_repo(mine, repo, overwrite=True)
        c = g.InferenceServerClient(s.grpc_url)
        c.load_model(MODEL)  # explicit mode: the client asks for the reload
        v = remote.connect(s.grpc_url, MODEL)
        assert v.spec.threshold == pytest.approx(new) and v.spec.threshold_source == "replaced in a test"
        assert np.asarray(v.embed(np.zeros((8, 8), np.uint8))).shape == (v.dim,)

        with open(repo / MODEL / "1" / "bundle" / "embedding.onnx", "ab") as f:
            f.write(b"tampered")
        with pytest.raises(InferenceServerException, match=r"embedding\.onnx: sha256 .* does not match the manifest"):
            c.load_model(MODEL)
        index = {m["name"]: m for m in s._post("/v2/repository/index")}
        assert index[MODEL]["state"] == "READY"  # a refused reload keeps the loaded version serving
        assert remote.connect(s.grpc_url, MODEL).spec.threshold == pytest.approx(new)


@needs_server
def test_serve_command_prints_ports_and_stops_on_sigterm(repo, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-m", "runtime.serve", "--repo", str(repo), "--log", str(tmp_path / "server.log")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving until"):
                break
        text = "".join(lines)
        assert f"model:    {MODEL} READY" in text, text + p.stderr.read() if p.poll() is not None else text
        assert "skipped:  digits_embedding: this server has no onnxruntime backend" in text
        port = int(re.search(r"grpc: 127\.0\.0\.1:(\d+)", text).group(1))
        assert re.search(r"http:     http://127\.0\.0\.1:\d+ .* metrics: http://127\.0\.0\.1:\d+/metrics", text)
        assert "runtime.remote as r; v = r.connect('127.0.0.1:" in text
        assert (
            remote.connect(f"127.0.0.1:{port}", MODEL)
            .verify(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
            .match
        )
        server_pid = int(next(ln.split()[0] for ln in _children(p.pid)))
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 130
        err = p.stderr.read()
        assert "stopped:  tritonserver exited with code 0" in err and "interrupted (SIGTERM)" in err
        assert _group_gone(server_pid)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "tritonserver" in ln]


def _group_gone(pgid: int, wait: float = 10.0) -> bool:
    """No process left in the group (killed stubs are reaped by init a moment later)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@needs_server
def test_a_killed_parent_leaves_no_server(repo):
    """SIGKILL of the process that started the server (no finally runs): the server and its stubs still go."""
    code = (
        "import sys, time; from pathlib import Path; from runtime.serve import TritonServer; "
        f"s = TritonServer(Path({str(repo)!r})); s.start(); s.wait_ready(90); print(s.process.pid, flush=True); "
        "time.sleep(120)"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        pid = int(p.stdout.readline())
    finally:
        p.kill()
        p.wait(10)
    assert _group_gone(pid, wait=30), "the server outlived the process that started it"


@needs_server
def test_bench_writes_its_report(bundle, tmp_path, capsys):
    import json

    from export.triton_bench import main

    assert main(["--bundle", str(bundle), "--out", str(tmp_path), "--seconds", "0.5", "--clients", "1", "2"]) == 0
    report = json.loads((tmp_path / f"triton_bench_{NAME}.json").read_text())
    assert [r["clients"] for r in report["server_rows"]] == [1, 2]
    assert all(r["requests"] > 0 and r["wrong"] == 0 and not r["errors"] for r in report["server_rows"])
    assert report["server"]["startup_to_ready_s"] > 0 and report["in_process"]["pairs_per_s"] > 0
    assert report["target"]["no_wrong_or_lost"] and isinstance(report["target"]["met"], bool)
    assert "startup-to-ready" in (tmp_path / f"triton_bench_{NAME}.txt").read_text()
    assert "target:" in capsys.readouterr().out


@needs_server
def test_serve_command_names_the_tampered_file_and_exits_2(bundle, tmp_path):
    repo = write_repo(bundle, tmp_path / "repo")
    with open(repo / MODEL / "1" / "bundle" / "head.onnx", "ab") as f:
        f.write(b"tampered")
    out = subprocess.run(
        [sys.executable, "-m", "runtime.serve", "--repo", str(repo)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert re.search(rf"model:    {MODEL} UNAVAILABLE: .*head\.onnx: sha256 .* does not match the manifest", out.stdout)
    assert "At:" not in out.stdout  # Triton's copy of the stub's traceback is not shown
    assert "error: no model loaded" in out.stderr and "head.onnx" in out.stderr
