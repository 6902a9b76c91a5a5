"""dcpp: distributed checkpointing for sharded models, from Python.

The C++ engine, in one process: save and load plain state dicts (NumPy
arrays, CPU torch tensors and other DLPack arrays, Python values, nested
dicts and lists) as native dcpp checkpoints, read any tensor or box of a
checkpoint (dcpp, safetensors or PyTorch DCP) into NumPy without copies, or
into torch through DLPack, and inspect or verify a checkpoint.

    import numpy as np, dcpp
    dcpp.save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": 7}, "/tmp/ckpt")
    r = dcpp.CheckpointReader("/tmp/ckpt")
    r.read("w", offsets=[0, 1], sizes=[2, 2])      # only the blocks holding the box are read
    assert dcpp.verify("/tmp/ckpt").ok
"""

from ._core import (  # noqa: F401
    CheckpointReader,
    CheckpointSummary,
    Error,
    KeySummary,
    VerifyProblem,
    VerifyReport,
    __version__,
    inspect,
    load_into,
    save,
    verify,
)


def load(path, keys=None):
    """Every tensor (as a new NumPy array) and value of the checkpoint at
    `path`, or only `keys`, as a flat dict keyed by dotted names."""
    reader = CheckpointReader(path)
    wanted = reader.keys() if keys is None else list(keys)
    return {k: (reader.read(k) if reader.is_tensor(k) else reader.value(k)) for k in wanted}


__all__ = [
    "CheckpointReader",
    "CheckpointSummary",
    "Error",
    "KeySummary",
    "VerifyProblem",
    "VerifyReport",
    "inspect",
    "load",
    "load_into",
    "save",
    "verify",
]
