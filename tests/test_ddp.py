"""DenoisingScoreModel at scale: DistributedDataParallel training and lazy netCDF data.

Equivalence used by the DDP tests: ``batch_size`` is the global batch B; at every step
rank r of W trains on the slice [r B/W, (r+1) B/W) of the global batch (samples and
their noise, drawn from streams keyed by the seed and the step only). DDP averages the
ranks' gradients of their batch means, which is the gradient of the global batch mean,
so the W-process run makes the updates of a single process with the same batch_size,
up to float32 round-off in the gradient sum.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

import gfdt
from gfdt.metrics import relative_fisher_error
from gfdt.scores import DenoisingScoreModel
from gfdt.scores.data import SnapshotDataset
from gfdt.scores.networks import MLP

# a correlated 2-D Gaussian: x = A z, score -(A A^T)^{-1} x
A = np.array([[1.0, 0.0], [0.8, 0.5]])
PREC = np.linalg.inv(A @ A.T)
KW = dict(max_steps=120, batch_size=64, eval_every=40, patience=100, lr=1e-2, warmup=20,
          residual=False, sigma_min=0.01, sigma_max=0.2,  # the noise range it was sized for
          progress=False, n_threads=1, seed=5)


def gaussian_samples(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2)) @ A.T


def small_net() -> MLP:
    """A small MLP with weights from its own seeded generator (not the global RNG)."""
    net = MLP(2, hidden=32, depth=2, emb=16)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[-1]))
    return net


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "x.nc"
    gfdt.io.save(xr.Dataset({"x": (("time", "feature"), gaussian_samples(2000, 0))}), path)
    return path


# Each rank records the indices of every batch it reads (the training batches, then the
# one read of the held-out samples of the quality report, strided over the held-out span;
# the statistics and validation use read_range), then saves its weights and history.
_WORKER = """
import sys, torch
torch.set_num_threads(1)
import numpy as np
import torch.distributed as dist
from gfdt.scores import DenoisingScoreModel
from gfdt.scores.data import SnapshotDataset
from gfdt.scores.networks import MLP

{SMALL_NET}
reads = []
real = SnapshotDataset.read
def recording(self, idx):
    reads.append(np.asarray(idx).copy())
    return real(self, idx)
SnapshotDataset.read = recording
kw = {KW}
m = DenoisingScoreModel(network=small_net(), **kw)
m.fit(sys.argv[1], variable="x")
rank = dist.get_rank() if dist.is_initialized() else 0
torch.save({"net": m.network_.state_dict(), "history": m.history_,
            "world": m.world_size_, "reads": reads}, sys.argv[2] + f"/rank{rank}.pt")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_script(tmp_path) -> str:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.replace("{KW}", repr(KW)).replace(
        "{SMALL_NET}", inspect.getsource(small_net)))
    return str(script)


def _serial_reference(data_file):
    """Serial fit on the same file, recording its batches like the workers."""
    reads = []
    real = SnapshotDataset.read

    def recording(self, idx):
        reads.append(np.asarray(idx).copy())
        return real(self, idx)

    SnapshotDataset.read = recording
    try:
        m = DenoisingScoreModel(network=small_net(), **KW).fit(data_file, variable="x")
    finally:
        SnapshotDataset.read = real
    return m, reads


def _check_against_serial(out, ref, ref_reads):
    r0 = torch.load(out / "rank0.pt", weights_only=False)
    r1 = torch.load(out / "rank1.pt", weights_only=False)
    assert r0["world"] == r1["world"] == 2
    # both ranks end with the same parameters, bit for bit (same averaged gradients)
    for k in r0["net"]:
        assert torch.equal(r0["net"][k], r1["net"][k]), k
    # sharding: each rank read half of every global batch, together exactly the serial one
    assert len(r0["reads"]) == len(r1["reads"]) == len(ref_reads) == KW["max_steps"] + 1
    # the last read: every rank reads the quality report's held-out samples whole
    np.testing.assert_array_equal(r0["reads"][-1], ref_reads[-1])
    np.testing.assert_array_equal(r1["reads"][-1], ref_reads[-1])
    for a, b, s in zip(r0["reads"][:-1], r1["reads"][:-1], ref_reads[:-1], strict=True):
        assert len(a) == len(b) == KW["batch_size"] // 2
        np.testing.assert_array_equal(np.concatenate([a, b]), s)
    # the same updates as the serial run, up to float32 round-off of the gradient sum;
    # one different Adam step would move weights by ~lr = 3e-3
    for k, w in ref.network_.state_dict().items():
        np.testing.assert_allclose(r0["net"][k].numpy(), w.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(r0["history"]["val_loss"], ref.history_["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(r0["history"]["train_loss"], ref.history_["train_loss"],
                               rtol=1e-5)
    # and the DDP model's score is as close to the closed form as the serial one
    ddp = DenoisingScoreModel(**KW)
    vars(ddp).update({k: v for k, v in vars(ref).items() if k.endswith("_")})
    ddp.network_ = small_net()
    ddp.network_.load_state_dict(r0["net"])
    test = gaussian_samples(2000, 1)
    err_ddp = relative_fisher_error(ddp, lambda x: -x @ PREC, test)
    err_serial = relative_fisher_error(ref, lambda x: -x @ PREC, test)
    assert err_serial < 0.25  # 1.08 at initialisation: learned (120 steps, not converged)
    assert abs(err_ddp - err_serial) < 1e-4


def test_two_process_ddp_equals_serial_run(tmp_path, data_file):
    """Two gloo ranks on 127.0.0.1 with torchrun's environment variables (as torchrun
    sets them); distributed="auto" joins the group."""
    port = _free_port()
    script = _worker_script(tmp_path)
    procs = []
    for r in range(2):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, script, str(data_file), str(tmp_path)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    ref, ref_reads = _serial_reference(data_file)  # meanwhile, in this process
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    _check_against_serial(tmp_path, ref, ref_reads)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_torchrun_two_processes_equal_serial_run(tmp_path, data_file):
    script = _worker_script(tmp_path)
    cmd = [shutil.which("torchrun"), "--standalone", "--nproc_per_node=2", script,
           str(data_file), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    ref, ref_reads = _serial_reference(data_file)
    _check_against_serial(tmp_path, ref, ref_reads)


def test_distributed_true_without_a_group_names_the_argument():
    with pytest.raises(ValueError, match="distributed=True"):
        DenoisingScoreModel(distributed=True, max_steps=1).fit(gaussian_samples(100, 0))
    with pytest.raises(ValueError, match="distributed"):
        DenoisingScoreModel(distributed="yes", max_steps=1).fit(gaussian_samples(100, 0))


# --------------------------------------------------------------- lazy netCDF data
def test_fit_from_netcdf_equals_fit_in_memory(tmp_path, data_file):
    """A file path, a lazily opened Dataset and the array give bit-identical models;
    the lazy fits read at most chunk_size snapshots at a time, never the whole file."""
    kw = {**KW, "max_steps": 40, "chunk_size": 300}
    X = gaussian_samples(2000, 0)
    mem = DenoisingScoreModel(network=small_net(), **kw).fit(X)
    sizes = []
    real_read, real_range = SnapshotDataset.read, SnapshotDataset.read_range

    def read(self, idx):
        sizes.append(len(idx))
        return real_read(self, idx)

    def read_range(self, a, b):
        sizes.append(min(b, len(self)) - a)
        return real_range(self, a, b)

    SnapshotDataset.read, SnapshotDataset.read_range = read, read_range
    try:
        from_path = DenoisingScoreModel(network=small_net(), **kw).fit(data_file)
        with xr.open_dataset(data_file) as ds:
            from_ds = DenoisingScoreModel(network=small_net(), **kw).fit(ds)
            assert not ds["x"].variable._in_memory  # still on disk after training
    finally:
        SnapshotDataset.read, SnapshotDataset.read_range = real_read, real_range
    assert max(sizes) <= 300 < 2000
    x = gaussian_samples(100, 2)
    for m in (from_path, from_ds):
        np.testing.assert_array_equal(m.mean_, mem.mean_)
        np.testing.assert_array_equal(m.std_, mem.std_)
        np.testing.assert_array_equal(m(x), mem(x))


def test_snapshot_dataset_order_and_reads(tmp_path):
    """Flat index i is (member i // T, time i % T), as numpy.concatenate over members."""
    rng = np.random.default_rng(3)
    u = rng.standard_normal((3, 7, 4, 4))
    da = xr.DataArray(u, dims=("member", "time", "y", "x"), name="u")
    path = gfdt.io.save(da, tmp_path / "u.nc")
    flat = np.concatenate(list(u))
    for source in (path, da, xr.open_dataset(path)["u"], u.reshape(21, 4, 4)):
        ds = SnapshotDataset(source)
        assert len(ds) == 21 and ds.state_shape == (4, 4)
        idx = np.array([20, 0, 7, 7, 13, 6])
        np.testing.assert_array_equal(ds.read(idx), flat[idx])
        np.testing.assert_array_equal(ds.read_range(5, 16), flat[5:16])
        np.testing.assert_array_equal(ds[9].numpy(), flat[9])
        batch = torch.utils.data.default_collate(ds.__getitems__([1, 2]))
        np.testing.assert_array_equal(batch.numpy(), flat[[1, 2]])
        ds.close()
    assert SnapshotDataset(path).lazy and not SnapshotDataset(da).lazy
    with pytest.raises(IndexError, match="indices"):
        SnapshotDataset(path).read([21])


def test_fit_from_a_streamed_run_folder(tmp_path):
    """A run folder of gfdt.simulate trains like the same run in memory (Dask-backed)."""
    ou = gfdt.OrnsteinUhlenbeck(n=8)
    kw = dict(n_members=2, burn_in=1.0, duration=20.0, save_interval=0.5, seed=1,
              progress=False, n_workers=1)
    run = gfdt.simulate(ou, **kw, output=tmp_path / "run", segment=4.0)
    mkw = dict(max_steps=6, batch_size=16, eval_every=3, progress=False, n_threads=1,
               network="mlp")
    a = DenoisingScoreModel(**mkw).fit(tmp_path / "run")
    b = DenoisingScoreModel(**mkw).fit(run.u)
    x = run.u.isel(member=0, time=slice(0, 3)).values
    np.testing.assert_array_equal(a(x), b(x))
