"""dcpp.torch.StorageWriter/StorageReader under real torch.distributed.checkpoint
(gloo ranks, DCP's default planners): resharding of TP, FSDP2 and 2-d mesh
state dicts with optimizer state, async_save, checkpoints crossing between
Python and the C++ side both ways, corruption and a killed save. Expected
values come from models built before sharding (same seed), a single-process
training run, NumPy, and the dcpp command's own verification."""
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.distributed.checkpoint as dcp

import dcpp
import dcpp.torch
import dcp_ranks
from dcp_ranks import MLPModule

WORLDS = [1, 2, 3, 4]


def cli():
    path = os.environ.get("DCPP_CLI")
    if not path:
        pytest.fail("DCPP_CLI is not set: run these tests through scripts/interop/run.sh (make interop)")
    return path


def reference_state(seed):
    return {k: v.clone() for k, v in MLPModule(seed).state_dict().items()}


@pytest.fixture(scope="module")
def tp_checkpoints(worlds, work):
    """The TP MLP saved by dcpp's writer at every world size."""
    seed = int(os.environ.get("DCPP_TEST_SEED", random.randrange(1 << 20)))
    print("tp_checkpoints: seed %d (DCPP_TEST_SEED=%d to replay)" % (seed, seed))
    paths = {}
    for n in WORLDS:
        paths[n] = str(work / ("tp-%d" % n))
        worlds(n).run("tp_save", path=paths[n], seed=seed)
    return seed, paths


@pytest.mark.parametrize("saved", WORLDS)
@pytest.mark.parametrize("loaded", WORLDS)
def test_tp_mlp_saved_at_n_loads_at_m(worlds, tp_checkpoints, saved, loaded):
    seed, paths = tp_checkpoints
    keys = worlds(loaded).run("tp_load", path=paths[saved], seed=seed, values=dcp_ranks.tp_values(saved))
    assert keys[0] == ["net1.bias", "net1.weight", "net2.bias", "net2.weight"]


@pytest.mark.parametrize("saved", WORLDS)
def test_python_checkpoint_is_native_for_cxx(tp_checkpoints, saved):
    seed, paths = tp_checkpoints
    path = paths[saved]
    run = subprocess.run([cli(), "verify", path], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    report = dcpp.verify(path)
    assert report.ok and report.complete and report.checksummed, report.problems
    reader = dcpp.CheckpointReader(path)
    assert reader.world_size == saved
    want = reference_state(seed)
    assert sorted(reader.tensor_keys()) == sorted("model." + k for k in want)
    for key, tensor in want.items():
        got = reader.read("model." + key)
        np.testing.assert_array_equal(got, tensor.numpy(), err_msg=key)
        box = reader.read("model." + key, offsets=[1] * tensor.dim(), sizes=[2] * tensor.dim())
        np.testing.assert_array_equal(box, tensor.numpy()[tuple(slice(1, 3) for _ in range(tensor.dim()))])
    # DCP's non-tensor values are its pickles, stored as bytes values.
    assert torch.load(io.BytesIO(reader.value("step")), weights_only=False) == 100 + saved
    assert torch.load(io.BytesIO(reader.value("info.tags")), weights_only=False) == ["tp", saved]


@pytest.mark.parametrize("loaded", [2, 3, 4])
def test_native_checkpoint_written_by_cxx_loads_into_tp_model(worlds, work, seed, loaded):
    """dcpp.save (the C++ save over NumPy arrays) writes the full tensors; DCP
    loads them through dcpp's reader into the sharded model."""
    path = str(work / ("from-cxx-%d" % loaded))
    values = {"step": 107, "info": {"world": 7, "name": "written by dcpp", "lr": 0.25}}
    dcpp.save({"model": {k: v.numpy() for k, v in reference_state(seed).items()}, **values}, path)
    worlds(loaded).run("tp_load", path=path, seed=seed, values=values)


@pytest.mark.parametrize(
    "saved,saved_mesh,saved_spec,loads",
    [
        (4, [2, 2], ["S0", "S1"], [(3, [3], ["S1"]), (2, [2], ["R"]), (4, [2, 2], ["S1", "S0"]), (1, [1], ["S0"])]),
        (3, [3], ["S0"], [(4, [2, 2], ["S0", "S0"]), (2, [1, 2], ["R", "S1"])]),
    ],
)
def test_dtensor_2d_mesh_reshards(worlds, work, seed, saved, saved_mesh, saved_spec, loads):
    path = str(work / ("dtensor-%d-%s" % (saved, "".join(saved_spec))))
    worlds(saved).run("dtensor_save", path=path, seed=seed, mesh_shape=saved_mesh, spec=saved_spec)
    for world, mesh, spec in loads:
        worlds(world).run("dtensor_load", path=path, seed=seed, mesh_shape=mesh, spec=spec)


@pytest.mark.parametrize("saved,loaded", [(2, 3), (3, 1), (4, 2)])
def test_fsdp2_model_and_optimizer_state_reshard(worlds, work, seed, saved, loaded):
    path = str(work / ("fsdp-%d-%d" % (saved, loaded)))
    (kinds, fsdp2), *_ = worlds(saved).run("fsdp_train_save", path=path, seed=seed)
    assert all("Shard(dim=0)" in k for k in kinds.values()), kinds
    print("FSDP2 fully_shard on CPU/gloo: %s" % ("yes" if fsdp2 else "no, DTensor Shard(0) parameters instead"))
    worlds(loaded).run("fsdp_load_and_resume", path=path, seed=seed)
    assert dcpp.verify(path).ok


@pytest.mark.parametrize("world", [1, 2])
def test_async_save_keeps_the_values_of_the_call(worlds, work, seed, world):
    path = str(work / ("async-%d" % world))
    kinds = worlds(world).run("async_save_then_change", path=path, seed=seed)
    assert "Future" in kinds[0], kinds
    assert dcpp.verify(path).ok


def copy_checkpoint(tp_checkpoints, tmp_path, world):
    seed, paths = tp_checkpoints
    path = str(tmp_path / "ckpt")
    shutil.copytree(paths[world], path)
    return seed, path


def load_plain(path, seed):
    """DCP load in this process (no process group) into a plain MLP state dict."""
    sd = {"model": MLPModule(seed + 1).state_dict()}
    dcp_ranks.fill_sentinel(sd)
    dcp.load(sd, storage_reader=dcpp.torch.StorageReader(path))
    return sd


def expect_load_error(path, seed, file):
    with pytest.raises(BaseException) as info:  # DCP's CheckpointException is a BaseException
        load_plain(path, seed)
    err = dcp_ranks.load_error(info.value)
    assert err is not None, "no dcpp.Error in %r" % info.value
    message = str(err)
    assert file in message, message
    assert any("model." + k in message for k in reference_state(seed)), message
    return err


def test_plain_load_in_one_process(tp_checkpoints, tmp_path):
    seed, path = copy_checkpoint(tp_checkpoints, tmp_path, 3)
    sd = load_plain(path, seed)
    for key, want in reference_state(seed).items():
        assert torch.equal(sd["model"][key], want), key


def test_flipped_byte_names_file_and_key(tp_checkpoints, tmp_path):
    seed, path = copy_checkpoint(tp_checkpoints, tmp_path, 2)
    data = os.path.join(path, "data-00001.bin")
    with open(data, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0x5A]))
    err = expect_load_error(path, seed, "data-00001.bin")
    assert err.code == "Corrupt", err.code
    assert not dcpp.verify(path).ok


def test_truncated_data_file_names_file_and_key(tp_checkpoints, tmp_path):
    seed, path = copy_checkpoint(tp_checkpoints, tmp_path, 2)
    data = os.path.join(path, "data-00000.bin")
    os.truncate(data, os.path.getsize(data) // 2)
    expect_load_error(path, seed, "data-00000.bin")


KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import torch, torch.distributed.checkpoint as dcp
    import dcpp.torch

    class KilledWriter(dcpp.torch.StorageWriter):
        # SIGKILLs this process once the data file has bytes in it, while
        # the C++ writer threads are still writing (the GIL is released).
        def write_data(self, plan, planner):
            data = os.path.join(self._writer().staging_dir, "data-00000.bin")
            def kill():
                while not (os.path.exists(data) and os.path.getsize(data) > 0):
                    time.sleep(0.0005)
                os.kill(os.getpid(), signal.SIGKILL)
            threading.Thread(target=kill, daemon=True).start()
            return super().write_data(plan, planner)

    g = torch.Generator().manual_seed(int(sys.argv[2]))
    state = {"big%d" % i: torch.randn(4 << 20, generator=g) for i in range(12)}  # 192 MiB
    dcp.save(state, storage_writer=KilledWriter(sys.argv[1], io_threads=1, direct_io=False))
    print("the save finished before the kill", flush=True)
    """
)


def test_save_killed_in_write_data_leaves_previous_checkpoint(tmp_path, seed):
    path = str(tmp_path / "ckpt")
    previous = {"model": MLPModule(seed).state_dict(), "step": 1}
    dcp.save(previous, storage_writer=dcpp.torch.StorageWriter(path))
    child = subprocess.run([sys.executable, "-W", "ignore", "-c", KILLED_SAVE, path, str(seed)],
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stdout, child.stderr)
    staging = os.path.join(str(tmp_path), ".ckpt.dcpp-staging")
    assert os.path.isdir(staging), "the killed save left no staging directory"
    assert not os.path.exists(os.path.join(staging, "dcpp.metadata"))
    assert os.path.getsize(os.path.join(staging, "data-00000.bin")) < 12 * (16 << 20), "killed after write_data"
    assert dcpp.verify(path).ok
    sd = load_plain(path, seed)
    for key, want in reference_state(seed).items():
        assert torch.equal(sd["model"][key], want), key
    # The next save replaces the leftovers and commits.
    dcp.save({"model": MLPModule(seed + 5).state_dict()}, storage_writer=dcpp.torch.StorageWriter(path))
    assert not os.path.exists(staging)
    sd = load_plain(path, seed + 4)
    for key, want in reference_state(seed + 5).items():
        assert torch.equal(sd["model"][key], want), key


def test_every_dtype_round_trips_in_one_process(tmp_path, seed):
    """float8 has no DLPack code and crosses as uint8 views; a transposed
    (non-contiguous) tensor is written as it is viewed."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(6, 5, generator=g)
    state = {d: base.to(getattr(torch, d)) for d in
             ("float32", "float64", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")}
    state.update({d: torch.randint(-100, 100, (6, 5), generator=g).to(getattr(torch, d))
                  for d in ("int8", "int16", "int32", "int64", "uint8", "bool")})
    state["transposed"] = base.t()
    path = str(tmp_path / "ckpt")
    dcp.save(state, storage_writer=dcpp.torch.StorageWriter(path))
    reader = dcpp.CheckpointReader(path)
    for key, want in state.items():
        assert reader.dtype(key) == str(want.dtype).removeprefix("torch."), key
        got = torch.from_numpy(reader.read(key, dtype="float64"))
        assert torch.equal(got, want.double()), key
    target = {k: torch.zeros_like(v) for k, v in state.items()}
    dcp.load(target, storage_reader=dcpp.torch.StorageReader(path))
    for key, want in state.items():
        assert torch.equal(target[key].contiguous().view(torch.uint8), want.contiguous().view(torch.uint8)), key


def test_import_dcpp_without_torch():
    code = "import sys; sys.modules['torch'] = None\nimport dcpp\ntry:\n import dcpp.torch\nexcept ImportError:\n print('ok')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr


def test_reader_reads_through_the_page_cache_only_where_ranks_share_chunks(tmp_path):
    """direct_io=None: a rank whose elements lie mostly in chunks other ranks
    read too is told to read buffered; a rank reading its own chunks keeps
    O_DIRECT. The verdicts are checked against plans built by hand."""
    from torch.distributed.checkpoint import planner as _planner
    from torch.distributed.checkpoint.metadata import MetadataIndex

    def item(fqn, chunk_offset, lengths):
        return _planner.ReadItem(
            type=_planner.LoadItemType.TENSOR,
            dest_index=MetadataIndex(fqn, chunk_offset), dest_offsets=torch.Size([0, 0]),
            storage_index=MetadataIndex(fqn, chunk_offset), storage_offsets=torch.Size([0, 0]),
            lengths=torch.Size(lengths))

    # Rank 0 and 1 read their own row chunks of "w" (same sharding); ranks 2
    # and 3 both read column halves of both chunks of "v" (resharded); rank 1
    # also reads a small piece of a chunk rank 2 reads (under a quarter).
    plans = [
        _planner.LoadPlan([item("w", (0, 0), (8, 8))]),
        _planner.LoadPlan([item("w", (8, 0), (8, 8)), item("v", (0, 0), (1, 2))]),
        _planner.LoadPlan([item("v", (0, 0), (8, 4)), item("v", (8, 0), (8, 4))]),
        _planner.LoadPlan([item("v", (0, 0), (8, 4)), item("v", (8, 0), (8, 4))]),
    ]
    reader = dcpp.torch.StorageReader(tmp_path)
    verdicts = [p.storage_data for p in reader.prepare_global_plan(plans)]
    assert verdicts == [False, False, True, True]
    assert [p.items for p in reader.prepare_global_plan(plans)] == [p.items for p in plans]
