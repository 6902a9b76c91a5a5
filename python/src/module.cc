// The dcpp Python module (dcpp._core): the C++ engine for one process.
//
// Binds save/load of plain state dicts (NumPy arrays, or any CPU array with
// __dlpack__, and Python values), CheckpointReader (any supported format,
// whole tensors or boxes into NumPy without copies, or to torch through
// DLPack), and inspect/verify. dcpp::Error becomes dcpp.Error (a
// RuntimeError with a `code` attribute, e.g. "Corrupt", "NotFound"). The GIL
// is released while dcpp reads or writes.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "arrays.h"
#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/inspect.h"
#include "dcpp/safetensors_storage.h"
#include "rank_storage.h"
#include "state_dicts.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace dcpp::python {
namespace {

PyObject* g_error_type = nullptr;

void translate_errors(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const Error& e) {
    nb::object type = nb::borrow(g_error_type);
    nb::object exc = type(nb::str(e.what()));
    exc.attr("code") = nb::str(std::string(error_code_name(e.code())).c_str());
    PyErr_SetObject(g_error_type, exc.ptr());
  }
}

std::optional<DType> parse_dtype(const std::optional<std::string>& name) {
  if (!name) return std::nullopt;
  return dtype_from_name(*name);
}

nb::tuple shape_tuple(const Shape& shape) {
  nb::list l;
  for (int64_t s : shape) l.append(s);
  return nb::tuple(l);
}

// Reads a tensor or a box of it, with the GIL released.
Tensor read_box(CheckpointReader& reader, const std::string& key, const std::optional<Shape>& offsets,
                const std::optional<Shape>& sizes, const std::optional<std::string>& dtype) {
  const std::optional<DType> as = parse_dtype(dtype);
  nb::gil_scoped_release release;
  if (!offsets && !sizes) return reader.read(key, as);
  const Shape shape = reader.tensor_info(key).shape;
  const Shape from = offsets ? *offsets : Shape(shape.size(), 0);
  Shape count = sizes ? *sizes : Shape{};
  if (!sizes) {
    for (size_t d = 0; d < shape.size(); ++d) count.push_back(shape[d] - (d < from.size() ? from[d] : 0));
  }
  return reader.read(key, from, count, as);
}

void bind_reader(nb::module_& m) {
  nb::class_<CheckpointReader>(m, "CheckpointReader",
                               "Read access to one checkpoint (dcpp, safetensors or PyTorch DCP, detected).")
      .def("__init__",
           [](CheckpointReader* self, const std::string& path) {
             nb::gil_scoped_release release;
             new (self) CheckpointReader(open_storage_reader(path));
           },
           "path"_a)
      .def("keys", &CheckpointReader::keys, "Every key (tensors and values), sorted.")
      .def("tensor_keys", &CheckpointReader::tensor_keys)
      .def("value_keys", &CheckpointReader::value_keys)
      .def("__contains__", &CheckpointReader::contains)
      .def("is_tensor", &CheckpointReader::is_tensor)
      .def("dtype", [](const CheckpointReader& r, const std::string& key) {
        return std::string(dtype_name(r.tensor_info(key).dtype));
      })
      .def("shape", [](const CheckpointReader& r, const std::string& key) {
        return shape_tuple(r.tensor_info(key).shape);
      })
      .def_prop_ro("world_size", [](const CheckpointReader& r) { return r.metadata().world_size; })
      .def("value", [](CheckpointReader& r, const std::string& key) {
        StateValue v;
        {
          nb::gil_scoped_release release;
          v = r.value(key);
        }
        return value_to_python(v, key);
      }, "key"_a, "A non-tensor value: int, float, bool, str or bytes.")
      .def("read",
           [](CheckpointReader& r, const std::string& key, std::optional<Shape> offsets, std::optional<Shape> sizes,
              std::optional<std::string> dtype) {
             return tensor_to_numpy(read_box(r, key, offsets, sizes, dtype), key);
           },
           "key"_a, "offsets"_a = nb::none(), "sizes"_a = nb::none(), "dtype"_a = nb::none(),
           "The tensor, or the box [offsets, offsets + sizes) of it, as a new NumPy array (in `dtype` if given).\n"
           "Reads and verifies only the checksum blocks that hold the box.")
      .def("read_dlpack",
           [](CheckpointReader& r, const std::string& key, std::optional<Shape> offsets, std::optional<Shape> sizes,
              std::optional<std::string> dtype) {
             return tensor_to_dlpack(read_box(r, key, offsets, sizes, dtype), key);
           },
           "key"_a, "offsets"_a = nb::none(), "sizes"_a = nb::none(), "dtype"_a = nb::none(),
           "As read(), as an array with __dlpack__ (torch.from_dlpack takes it, bfloat16 included).")
      .def("read_into",
           [](CheckpointReader& r, const std::string& key, AnyArray out, std::optional<Shape> offsets) {
             Tensor dest = tensor_from_array(out);
             const Shape from = offsets ? *offsets : Shape(dest.dim(), 0);
             nb::gil_scoped_release release;
             r.read_into(key, from, dest);
           },
           "key"_a, "out"_a, "offsets"_a = nb::none(),
           "Reads the box starting at `offsets` with `out`'s shape into `out` (any dtype and strides), in place.");
}

void bind_inspect(nb::module_& m) {
  nb::class_<KeySummary>(m, "KeySummary")
      .def_ro("key", &KeySummary::key)
      .def_ro("is_tensor", &KeySummary::is_tensor)
      .def_ro("type", &KeySummary::type)
      .def_prop_ro("shape", [](const KeySummary& k) { return shape_tuple(k.shape); })
      .def_ro("chunks", &KeySummary::chunks)
      .def_ro("bytes", &KeySummary::bytes)
      .def_ro("files", &KeySummary::files)
      .def("__repr__", [](const KeySummary& k) { return "<KeySummary " + k.key + " " + k.type + ">"; });
  nb::class_<CheckpointSummary>(m, "CheckpointSummary")
      .def_ro("path", &CheckpointSummary::path)
      .def_ro("format", &CheckpointSummary::format)
      .def_ro("layout", &CheckpointSummary::layout)
      .def_ro("format_version", &CheckpointSummary::format_version)
      .def_ro("writer_version", &CheckpointSummary::writer_version)
      .def_ro("complete", &CheckpointSummary::complete)
      .def_ro("world_size", &CheckpointSummary::world_size)
      .def_ro("block_size", &CheckpointSummary::block_size)
      .def_ro("data_bytes", &CheckpointSummary::data_bytes)
      .def_ro("total_bytes", &CheckpointSummary::total_bytes)
      .def_prop_ro("files", [](const CheckpointSummary& s) {
        nb::dict files;
        for (const auto& f : s.files) files[nb::str(f.name.c_str())] = f.bytes;
        return files;
      })
      .def_ro("keys", &CheckpointSummary::keys);
  nb::class_<VerifyProblem>(m, "VerifyProblem")
      .def_ro("file", &VerifyProblem::file)
      .def_prop_ro("offset", [](const VerifyProblem& p) -> nb::object {
        if (p.offset < 0) return nb::none();
        return nb::int_(p.offset);
      })
      .def_ro("message", &VerifyProblem::message)
      .def("__repr__", [](const VerifyProblem& p) { return "<VerifyProblem " + p.file + ": " + p.message + ">"; });
  nb::class_<VerifyReport>(m, "VerifyReport")
      .def_prop_ro("ok", &VerifyReport::ok)
      .def_ro("path", &VerifyReport::path)
      .def_ro("format", &VerifyReport::format)
      .def_ro("complete", &VerifyReport::complete)
      .def_ro("checksummed", &VerifyReport::checksummed)
      .def_prop_ro("tensors", [](const VerifyReport& r) { return r.totals.tensors; })
      .def_prop_ro("values", [](const VerifyReport& r) { return r.totals.values; })
      .def_prop_ro("chunks", [](const VerifyReport& r) { return r.totals.chunks; })
      .def_prop_ro("files", [](const VerifyReport& r) { return r.totals.files; })
      .def_prop_ro("bytes_verified", [](const VerifyReport& r) { return r.totals.bytes_verified; })
      .def_ro("problems", &VerifyReport::problems)
      .def_ro("io_errors", &VerifyReport::io_errors);
  m.def("inspect", [](const std::string& path) {
    nb::gil_scoped_release release;
    return inspect_checkpoint(path);
  }, "path"_a, "Summarises the checkpoint at `path` (format detected).");
  m.def("verify", [](const std::string& path) {
    nb::gil_scoped_release release;
    return verify_checkpoint(path);
  }, "path"_a, "Checks every checksum and structural invariant; returns every problem found.");
}

void bind_save_load(nb::module_& m) {
  m.def("save", [](nb::dict state_dict, const std::string& path) {
    StateDict sd = state_dict_from_python(state_dict, /*writable=*/false);
    nb::gil_scoped_release release;
    save(sd, path);
  }, "state_dict"_a, "path"_a,
        "Saves a state dict (arrays, values, nested dicts and lists) as a native dcpp checkpoint at `path`,\n"
        "replacing a checkpoint already there atomically. One process.");
  m.def("load_into", [](nb::dict state_dict, const std::string& path, bool allow_partial_load) {
    StateDict sd = state_dict_from_python(state_dict, /*writable=*/true);
    LoadOptions options;
    options.allow_partial_load = allow_partial_load;
    {
      nb::gil_scoped_release release;
      load(sd, path, options);
    }
    copy_values_back(state_dict, sd);
  }, "state_dict"_a, "path"_a, "allow_partial_load"_a = false,
        "Loads the checkpoint at `path` into the state dict's arrays, in place (dtypes convert).\n"
        "Every key is checked before any byte is written; int, float, bool, str and bytes values are\n"
        "replaced in the dict by the checkpoint's.");
}

}  // namespace
}  // namespace dcpp::python

NB_MODULE(_core, m) {
  using namespace dcpp::python;
  m.doc() = "dcpp: distributed checkpointing for sharded models (the C++ engine)";
  g_error_type = PyErr_NewExceptionWithDoc("dcpp.Error", "A dcpp error; `code` names its kind (e.g. 'Corrupt').",
                                           PyExc_RuntimeError, nullptr);
  m.attr("Error") = nb::handle(g_error_type);
  nb::register_exception_translator(translate_errors);
  m.attr("__version__") = DCPP_VERSION;
  bind_reader(m);
  bind_inspect(m);
  bind_save_load(m);
  bind_rank_storage(m);
}
