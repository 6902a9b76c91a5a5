"""Ranks for the dcpp.torch tests: pools of gloo processes, one per world
size, kept for the whole session (starting torch in a process costs seconds),
and the scenarios they run.

A test calls World.run("scenario", **kwargs): every rank runs the module
function of that name and the call returns the ranks' results, or fails with
every failing rank's traceback. Expected values never come from dcpp: the
full tensors of a model built before sharding (same seed), a single-process
model and optimizer trained the same way, and torch's own collectives
(DTensor.full_tensor) to gather what was loaded.
"""
import datetime
import os
import queue
import traceback

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
import torch.nn as nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

try:  # torch >= 2.5
    from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor
except ImportError:  # torch 2.4
    from torch.distributed._tensor import DTensor, Replicate, Shard, distribute_tensor
try:  # torch >= 2.6
    from torch.distributed.fsdp import fully_shard
except ImportError:  # torch 2.4, 2.5
    from torch.distributed._composable.fsdp import fully_shard
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

import dcpp
import dcpp.torch

SENTINEL = -777.0
RTOL, ATOL = 1e-5, 1e-6


# ---------------------------------------------------------------- the pool

def _worker(rank, world, init_file, jobs, results):
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    while True:
        job = jobs.get()
        if job is None:
            break
        name, kwargs = job
        try:
            results.put((rank, True, globals()[name](**kwargs)))
        except BaseException:  # noqa: B902 - reported to the test, which fails
            results.put((rank, False, traceback.format_exc()))
    dist.destroy_process_group()


class World:
    """`size` gloo ranks waiting for scenarios."""

    def __init__(self, size, work_dir):
        self.size = size
        ctx = mp.get_context("spawn")
        self.jobs = [ctx.Queue() for _ in range(size)]
        self.results = ctx.Queue()
        init_file = os.path.join(work_dir, "gloo-init-%d" % size)
        self.procs = []
        for rank in range(size):
            p = ctx.Process(target=_worker, args=(rank, size, init_file, self.jobs[rank], self.results), daemon=True)
            p.start()
            self.procs.append(p)
        self.broken = False

    def run(self, name, timeout=300, **kwargs):
        if self.broken:
            raise AssertionError("the %d-rank world was left broken by an earlier scenario" % self.size)
        for q in self.jobs:
            q.put((name, kwargs))
        outs, errors = {}, []
        for _ in range(self.size):
            try:
                rank, ok, out = self.results.get(timeout=timeout)
            except queue.Empty:
                self.broken = True
                self.close(force=True)
                raise AssertionError("%s on %d ranks: no answer within %d s" % (name, self.size, timeout))
            if ok:
                outs[rank] = out
            else:
                errors.append("rank %d:\n%s" % (rank, out))
        if errors:
            raise AssertionError("%s on %d ranks failed:\n%s" % (name, self.size, "\n".join(errors)))
        return [outs[r] for r in range(self.size)]

    def close(self, force=False):
        if not force:
            for q in self.jobs:
                q.put(None)
        for p in self.procs:
            p.join(timeout=None if not force else 0)
            if p.is_alive():
                p.kill()
                p.join()


# ---------------------------------------------------------------- models and checks

class MLPModule(nn.Module):
    """PyTorch's test MLPModule: net1 Linear(10, 16), relu, net2 Linear(16, 10)."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.net1 = nn.Linear(10, 16)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(16, 10)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def mesh_1d():
    return init_device_mesh("cpu", (dist.get_world_size(),))


def tp_model(seed):
    model = MLPModule(seed)
    return parallelize_module(model, mesh_1d(), {"net1": ColwiseParallel(), "net2": RowwiseParallel()})


def reference_tensors(seed):
    """Tensors of several shapes and dtypes, uneven over every world size tested."""
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(13, 7, generator=g),
        "b": torch.randn(9, generator=g),
        "h": torch.randn(5, 6, generator=g).to(torch.bfloat16),
        "i": torch.randint(-1000, 1000, (7, 3), generator=g),
        "d": torch.randn(6, 11, generator=g, dtype=torch.float64),
    }


def placements_for(spec, tensor):
    """'S0', 'S1', 'R' per mesh dimension; a Shard dim beyond the tensor's falls to 0."""
    out = []
    for s in spec:
        if s == "R":
            out.append(Replicate())
        else:
            d = int(s[1:])
            out.append(Shard(d if d < tensor.dim() else 0))
    return out


def local(t):
    return t.to_local() if isinstance(t, DTensor) else t


def full(t):
    return t.full_tensor() if isinstance(t, DTensor) else t


def fill_sentinel(obj):
    """Every tensor leaf of a nested state dict filled with the sentinel, in place."""
    if isinstance(obj, dict):
        for v in obj.values():
            fill_sentinel(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            fill_sentinel(v)
    elif isinstance(obj, torch.Tensor):
        t = local(obj)
        with torch.no_grad():
            t.fill_(SENTINEL if t.is_floating_point() else -7)


def assert_equal(got, want, what, exact=True):
    got = full(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, got.dtype, want.shape, want.dtype)
    if exact:
        assert torch.equal(got, want), "%s differs:\n%s\n%s" % (what, got, want)
    else:
        torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL, msg=what)


def load_error(exc):
    """The dcpp.Error inside DCP's CheckpointException (or `exc` itself)."""
    if isinstance(exc, dcpp.Error):
        return exc
    for failure in getattr(exc, "failures", {}).values():
        inner = failure[0] if isinstance(failure, tuple) else failure
        if isinstance(inner, dcpp.Error):
            return inner
    return None


# ---------------------------------------------------------------- scenarios

def tp_values(world):
    """The non-tensor values saved beside the TP model: DCP pickles each leaf
    (a list of plain values is one leaf)."""
    return {"step": 100 + world, "info": {"world": world, "tags": ["tp", world]}}


def _blank(value):
    """A value of the same structure and types, every leaf different."""
    if isinstance(value, dict):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return {int: -1, str: "", float: -1.0}[type(value)]


def tp_save(path, seed):
    model = tp_model(seed)
    sd = {"model": model.state_dict(), **tp_values(dist.get_world_size())}
    dcp.save(sd, storage_writer=dcpp.torch.StorageWriter(path))


def tp_load(path, seed, values=None):
    """Loads a TP MLP saved with `seed` into a differently seeded, sentinel-filled
    one; with `values`, the non-tensor values saved beside it too."""
    model = tp_model(seed + 1)
    sd = {"model": model.state_dict(), **_blank(values or {})}
    fill_sentinel(sd)
    dcp.load(sd, storage_reader=dcpp.torch.StorageReader(path))
    for key, want in MLPModule(seed).state_dict().items():
        assert_equal(model.state_dict()[key], want, key)
    for key, want in (values or {}).items():
        assert sd[key] == want, (key, sd[key], want)
    # The loaded shards work as a model: the same output as the reference
    # (where torch's TP forward runs: it fails on uneven shards, 16 over 3,
    # and torch 2.4's on one rank).
    if dist.get_world_size() in (2, 4):
        x = torch.randn(4, 10, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(model(x), MLPModule(seed)(x), rtol=RTOL, atol=ATOL)
    return sorted(sd["model"])


def dtensor_save(path, seed, mesh_shape, spec):
    mesh = init_device_mesh("cpu", tuple(mesh_shape))
    sd = {"t": {k: distribute_tensor(v, mesh, placements_for(spec, v)) for k, v in reference_tensors(seed).items()}}
    dcp.save(sd, storage_writer=dcpp.torch.StorageWriter(path))


def dtensor_load(path, seed, mesh_shape, spec):
    mesh = init_device_mesh("cpu", tuple(mesh_shape))
    ref = reference_tensors(seed)
    sd = {"t": {k: distribute_tensor(torch.zeros_like(v), mesh, placements_for(spec, v)) for k, v in ref.items()}}
    fill_sentinel(sd)
    dcp.load(sd, storage_reader=dcpp.torch.StorageReader(path))
    for k, v in ref.items():
        assert_equal(sd["t"][k], v, k)


def _train(model, opt, seed, steps):
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(seed))
    for _ in range(steps):
        model(x).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()


def _reference_training(seed, steps):
    """The same model and optimizer on one process, no sharding."""
    model = MLPModule(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    _train(model, opt, seed, steps)
    return model, opt


def fsdp2_runs_on_cpu():
    """Whether fully_shard trains on CPU/gloo in this torch (2.4 needs CUDA)."""
    try:
        model = nn.Linear(2, 2)
        fully_shard(model, mesh=mesh_1d())
        model(torch.ones(1, 2)).sum().backward()
        return True
    except Exception:  # noqa: BLE001 - any failure means: not here
        return False


def _sharded_model(seed):
    """FSDP2 where it runs; else the state FSDP2 would produce, built directly:
    every parameter a DTensor Shard(0), and Adam over them."""
    model = MLPModule(seed)
    if fsdp2_runs_on_cpu():
        fully_shard(model, mesh=mesh_1d())
        return model, torch.optim.Adam(model.parameters(), lr=0.01), True
    mesh = mesh_1d()
    for module in (model.net1, model.net2):
        for name, p in list(module.named_parameters(recurse=False)):
            module.register_parameter(name, nn.Parameter(distribute_tensor(p.detach(), mesh, [Shard(0)])))
    return model, torch.optim.Adam(model.parameters(), lr=0.01), False


def _copy_training(model, opt, ref_model, ref_opt):
    """Without FSDP2: the reference's trained parameters and Adam state,
    sharded Shard(0), put into the DTensor model and its optimizer."""
    refs = dict(ref_model.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            ref = refs[name]
            local(p).copy_(distribute_tensor(ref.detach(), p.device_mesh, p.placements).to_local())
            state = ref_opt.state[ref]
            opt.state[p] = {
                "step": state["step"].clone(),
                "exp_avg": distribute_tensor(state["exp_avg"], p.device_mesh, p.placements),
                "exp_avg_sq": distribute_tensor(state["exp_avg_sq"], p.device_mesh, p.placements),
            }


def fsdp_train_save(path, seed):
    model, opt, fsdp2 = _sharded_model(seed)
    if fsdp2:
        _train(model, opt, seed, steps=2)
    else:
        _copy_training(model, opt, *_reference_training(seed, steps=2))
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, storage_writer=dcpp.torch.StorageWriter(path))
    return {k: type(v).__name__ + str(getattr(v, "placements", "")) for k, v in msd.items()}, fsdp2


def fsdp_load_and_resume(path, seed):
    """Loads model and Adam state saved after 2 steps into a fresh sharded
    model, compares with the single-process reference, then (with FSDP2)
    takes a third step on both: the loaded optimizer state (step count,
    moments) must act the same."""
    ref_model, ref_opt = _reference_training(seed, steps=2)
    model, opt, fsdp2 = _sharded_model(seed + 1)
    if not fsdp2:  # Adam's state exists only after a step: any, to be overwritten
        _copy_training(model, opt, *_reference_training(seed + 1, steps=1))
    msd, osd = get_state_dict(model, opt)
    fill_sentinel(msd)
    fill_sentinel(osd)
    dcp.load({"model": msd, "optim": osd}, storage_reader=dcpp.torch.StorageReader(path))
    set_state_dict(model, opt, model_state_dict=msd, optim_state_dict=osd)
    names = dict(ref_model.named_parameters())
    for key, want in ref_model.state_dict().items():
        assert_equal(model.state_dict()[key], want, key, exact=False)
    _, osd = get_state_dict(model, opt)
    for name, p in names.items():
        for field in ("exp_avg", "exp_avg_sq", "step"):
            assert_equal(osd["state"][name][field], ref_opt.state[p][field].reshape(osd["state"][name][field].shape),
                         "optim.state.%s.%s" % (name, field), exact=False)
    if fsdp2:
        _train(model, opt, seed, steps=1)
        _train(ref_model, ref_opt, seed, steps=1)
        for key, want in ref_model.state_dict().items():
            assert_equal(model.state_dict()[key], want, "after a step: " + key, exact=False)
    return fsdp2


def async_save_then_change(path, seed):
    """async_save, then every parameter changes at once: the checkpoint keeps the old values."""
    model = tp_model(seed)
    future = dcp.async_save({"model": model.state_dict()}, storage_writer=dcpp.torch.StorageWriter(path))
    with torch.no_grad():
        for p in model.parameters():
            local(p).add_(1000.0)
    future.result()
    for key, want in MLPModule(seed).state_dict().items():
        assert_equal(model.state_dict()[key], want + 1000.0, "changed " + key, exact=False)
    tp_load(path, seed)
    return type(future).__module__ + "." + type(future).__name__
