"""The dcpp Python module against references computed without it: NumPy
arrays and slicing, a checkpoint written by the C++ API with its tensors
dumped as .npy files (tests/storage/dump_checkpoint), the independent
format reader (tests/storage/independent_reader.py, written from
docs/format.md alone), and the dcpp command."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dcpp
from conftest import env_path

NUMPY_DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool"]


def random_array(rng, shape, dtype):
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("float"):
        return rng.standard_normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def independent_reader():
    sys.path.insert(0, os.path.join(env_path("DCPP_SOURCE_DIR"), "tests", "storage"))
    import independent_reader as ir
    return ir


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_every_dtype_round_trips_bit_exact(tmp_path, rng, dtype):
    arrays = {
        "matrix": random_array(rng, (37, 19), dtype),
        "scalar": random_array(rng, (), dtype),
        "empty": random_array(rng, (0, 5), dtype),
        "strided": random_array(rng, (8, 6), dtype)[::2, 1::2],  # a non-contiguous view, saved as is
    }
    path = str(tmp_path / "ckpt")
    dcpp.save(arrays, path)
    reader = dcpp.CheckpointReader(path)
    for key, expected in arrays.items():
        got = reader.read(key)
        assert reader.dtype(key) == dtype
        assert got.dtype == expected.dtype and got.shape == expected.shape, key
        assert got.tobytes() == np.ascontiguousarray(expected).tobytes(), key
    loaded = dcpp.load(path)
    assert sorted(loaded) == sorted(arrays)


def test_python_values_and_nesting_round_trip(tmp_path):
    sd = {"step": 12, "lr": 0.25, "done": True, "name": "run-7", "blob": b"\x00\xffdcpp",
          "optim": {"state": {"w": {"exp_avg": np.full(4, 0.5, np.float32)}}, "param_groups": [{"lr": 0.1}]}}
    path = str(tmp_path / "ckpt")
    dcpp.save(sd, path)
    r = dcpp.CheckpointReader(path)
    assert r.value("step") == 12 and type(r.value("step")) is int
    assert r.value("lr") == 0.25 and r.value("done") is True
    assert r.value("name") == "run-7" and r.value("blob") == b"\x00\xffdcpp"
    assert r.value("optim.param_groups.0.lr") == 0.1
    np.testing.assert_array_equal(r.read("optim.state.w.exp_avg"), np.full(4, 0.5, np.float32))
    target = {"step": 0, "name": "", "optim": {"state": {"w": {"exp_avg": np.zeros(4, np.float64)}}}}
    dcpp.load_into(target, path)
    assert target["step"] == 12 and target["name"] == "run-7"
    np.testing.assert_array_equal(target["optim"]["state"]["w"]["exp_avg"], np.full(4, 0.5))


def test_box_reads_match_numpy_slicing(tmp_path, rng):
    full = random_array(rng, (257, 131), "float32")
    path = str(tmp_path / "ckpt")
    dcpp.save({"w": full}, path)
    r = dcpp.CheckpointReader(path)
    for _ in range(20):
        lo = [int(rng.integers(0, s)) for s in full.shape]
        n = [int(rng.integers(0, s - o + 1)) for s, o in zip(full.shape, lo)]
        box = r.read("w", offsets=lo, sizes=n)
        np.testing.assert_array_equal(box, full[lo[0]:lo[0] + n[0], lo[1]:lo[1] + n[1]])
    np.testing.assert_array_equal(r.read("w", offsets=[200, 7]), full[200:, 7:])
    np.testing.assert_array_equal(r.read("w", dtype="float64"), full.astype(np.float64))


def test_read_into_writes_the_callers_array_in_place(tmp_path, rng):
    full = random_array(rng, (10, 12), "int32")
    path = str(tmp_path / "ckpt")
    dcpp.save({"w": full}, path)
    parent = np.full((20, 20), -1, np.int64)
    view = parent[2:8:2, 3:12:3]  # strided, another dtype: converted in place
    dcpp.CheckpointReader(path).read_into("w", view, offsets=[4, 0])
    expected = np.full((20, 20), -1, np.int64)
    expected[2:8:2, 3:12:3] = full[4:7, 0:3]
    np.testing.assert_array_equal(parent, expected)


def test_arrays_share_memory_with_the_engine(tmp_path):
    path = str(tmp_path / "ckpt")
    dcpp.save({"w": np.arange(6, dtype=np.float32)}, path)
    got = dcpp.CheckpointReader(path).read("w")
    assert not got.flags.owndata  # a view of the buffer dcpp read into, no copy
    via_dlpack = np.from_dlpack(dcpp.CheckpointReader(path).read_dlpack("w"))
    np.testing.assert_array_equal(via_dlpack, np.arange(6, dtype=np.float32))


def test_dtype_numpy_lacks_says_what_to_do(tmp_path):
    path = str(tmp_path / "ckpt")
    dcpp.save({"w": np.ones(3, np.float32)}, path)
    with pytest.raises(dcpp.Error) as e:
        dcpp.CheckpointReader(path).read("w", dtype="bfloat16")
    assert e.value.code == "Unsupported"
    assert "'w'" in str(e.value) and "read_dlpack" in str(e.value)


def widen_by_hand(bits, dtype):
    """The raw bits of a NumPy-less dtype, decoded to float32 without dcpp."""
    if dtype == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if dtype == "float8_e5m2":  # the top byte of a float16
        return (bits.astype(np.uint16) << 8).view(np.float16).astype(np.float32)
    assert dtype == "float8_e4m3fn"
    b = bits.astype(np.int64)
    sign = np.where(b >> 7, -1.0, 1.0)
    exp, mant = (b >> 3) & 0xF, b & 0x7
    value = np.where(exp == 0, mant / 8.0 * 2.0 ** -6, (1 + mant / 8.0) * 2.0 ** (exp - 7))
    value = np.where((exp == 15) & (mant == 7), np.nan, value)
    return (sign * value).astype(np.float32)


def test_cpp_written_checkpoint_reads_as_dumped(tmp_path):
    """dump_checkpoint (C++) wrote every dtype chunked over 3 ranks and each full tensor as .npy."""
    dump = env_path("DCPP_DUMP_DIR")
    r = dcpp.CheckpointReader(os.path.join(dump, "ckpt"))
    assert r.world_size == 3
    with open(os.path.join(dump, "dump", "manifest.txt")) as manifest:
        rows = [line.split() for line in manifest]
    assert len(rows) >= 10
    for key, dtype, fname in rows:
        expected = np.load(os.path.join(dump, "dump", fname))
        assert r.dtype(key) == dtype
        if dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):  # dumped as raw bits
            np.testing.assert_array_equal(r.read(key, dtype="float32"), widen_by_hand(expected, dtype))
        else:
            got = r.read(key)
            assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), key


def test_python_written_checkpoint_reads_independently(tmp_path, rng):
    """The independent reader (docs/format.md alone) and the dcpp command read what Python wrote."""
    arrays = {"a.w": random_array(rng, (33, 7), "float32"), "a.b": random_array(rng, (5,), "int64"),
              "mask": random_array(rng, (4, 4), "bool")}
    path = str(tmp_path / "ckpt")
    dcpp.save({"a": {"w": arrays["a.w"], "b": arrays["a.b"]}, "mask": arrays["mask"], "step": 3}, path)
    dump = tmp_path / "dump"
    dump.mkdir()
    with open(dump / "manifest.txt", "w") as manifest:
        for i, (key, a) in enumerate(arrays.items()):
            np.save(dump / ("%d.npy" % i), a)
            manifest.write("%s %s %d.npy\n" % (key, a.dtype.name, i))
    assert independent_reader().main(["independent_reader.py", path, str(dump)]) == 0
    out = subprocess.run([env_path("DCPP_CLI"), "inspect", "--json", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["format"] == "dcpp"
    assert subprocess.run([env_path("DCPP_CLI"), "verify", path], capture_output=True).returncode == 0


def test_corruption_names_file_key_and_offset(tmp_path, rng):
    path = str(tmp_path / "ckpt")
    dcpp.save({"w": random_array(rng, (64, 64), "float32")}, path)
    flip_byte(os.path.join(path, "data-00000.bin"), 100)
    with pytest.raises(dcpp.Error) as e:
        dcpp.CheckpointReader(path).read("w")
    assert e.value.code == "Corrupt"
    assert "data-00000.bin" in str(e.value) and "'w'" in str(e.value)
    report = dcpp.verify(path)
    assert not report.ok
    assert len(report.problems) == 1
    assert report.problems[0].file.endswith("data-00000.bin") and report.problems[0].offset == 0


def test_truncated_data_file_is_an_error(tmp_path, rng):
    path = str(tmp_path / "ckpt")
    dcpp.save({"w": random_array(rng, (64, 64), "float32")}, path)
    data = os.path.join(path, "data-00000.bin")
    os.truncate(data, os.path.getsize(data) // 2)
    with pytest.raises(dcpp.Error) as e:
        dcpp.CheckpointReader(path).read("w")
    assert "data-00000.bin" in str(e.value) and "'w'" in str(e.value)
    assert not dcpp.verify(path).ok


def test_missing_checkpoint_and_bad_input(tmp_path):
    with pytest.raises(dcpp.Error) as e:
        dcpp.CheckpointReader(str(tmp_path / "none"))
    assert e.value.code == "NotFound" and "none" in str(e.value)
    with pytest.raises(dcpp.Error) as e:
        dcpp.save({"w": object()}, str(tmp_path / "ckpt"))
    assert e.value.code == "InvalidArgument" and "'w'" in str(e.value)
    path = str(tmp_path / "ckpt2")
    dcpp.save({"w": np.ones((2, 3), np.float32)}, path)
    with pytest.raises(dcpp.Error) as e:
        dcpp.load_into({"w": np.ones((3, 2), np.float32)}, path)
    assert "'w'" in str(e.value)
    with pytest.raises(dcpp.Error):
        dcpp.load_into({"w": np.ones((2, 3), np.float32), "v": np.ones(1, np.float32)}, path)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = str(tmp_path / "ckpt")
    good = np.arange(10, dtype=np.float32)
    dcpp.save({"w": good}, path)
    with pytest.raises(dcpp.Error):
        dcpp.save({"w": np.ones(3, np.float32), "bad": {"x": object()}}, path)
    np.testing.assert_array_equal(dcpp.CheckpointReader(path).read("w"), good)
    assert dcpp.verify(path).ok
