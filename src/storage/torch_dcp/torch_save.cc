// torch.save archives of one tensor or one value (see torch_save.h).
#include "storage/torch_dcp/torch_save.h"

#include <cstring>

#include "dcpp/error.h"
#include "storage/torch_dcp/zip.h"

namespace dcpp::torch_dcp {
namespace {

struct DTypeNames {
  DType dtype;
  const char* storage;
  const char* attr;
};
constexpr DTypeNames kNames[] = {
    {DType::kFloat32, "FloatStorage", "float32"},
    {DType::kFloat64, "DoubleStorage", "float64"},
    {DType::kFloat16, "HalfStorage", "float16"},
    {DType::kBFloat16, "BFloat16Storage", "bfloat16"},
    {DType::kInt8, "CharStorage", "int8"},
    {DType::kInt16, "ShortStorage", "int16"},
    {DType::kInt32, "IntStorage", "int32"},
    {DType::kInt64, "LongStorage", "int64"},
    {DType::kUInt8, "ByteStorage", "uint8"},
    {DType::kBool, "BoolStorage", "bool"},
    // No typed storage class: torch.save writes _rebuild_tensor_v3 with an
    // UntypedStorage and the dtype as the last argument.
    {DType::kFloat8E4M3FN, "", "float8_e4m3fn"},
    {DType::kFloat8E5M2, "", "float8_e5m2"},
};

constexpr uint64_t kMaxPickleBytes = 64ull << 20;

bool tensor_global(std::string_view module, std::string_view name) {
  if (module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor_v3")) return true;
  if (module == "collections" && name == "OrderedDict") return true;
  if (module == "torch.storage" && name == "UntypedStorage") return true;
  DType d;
  if (module == "torch" && (dtype_from_storage_class(name, d) || dtype_from_torch_attr(name, d))) return true;
  return false;
}

const PyNode& child(const PyGraph& g, const PyNode& n, size_t i, PyKind kind, const std::string& source,
                    const char* what) {
  if (i >= n.items.size()) pickle_error(source, std::string("missing ") + what);
  const PyNode& c = g.at(n.items[i]);
  if (c.kind != kind) {
    pickle_error(source, std::string(what) + " is a " + std::string(py_kind_name(c.kind)) + ", expected " +
                             std::string(py_kind_name(kind)));
  }
  return c;
}

Shape int_tuple(const PyGraph& g, const PyNode& t, const std::string& source, const char* what) {
  Shape out;
  for (uint32_t i : t.items) {
    const PyNode& v = g.at(i);
    if (v.kind != PyKind::kInt || v.i < 0) pickle_error(source, std::string(what) + " holds a non-integer or negative entry");
    out.push_back(v.i);
  }
  return out;
}

std::string utf8_to_latin1(const std::string& s, const std::string& source) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if ((c & 0xe0) == 0xc0 && c <= 0xc3 && i + 1 < s.size()) {
      out.push_back(static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(s[++i]) & 0x3f)));
    } else {
      pickle_error(source, "bytes object encoded with a character outside latin-1");
    }
  }
  return out;
}

Bytes to_bytes(const std::string& s) {
  Bytes b(s.size());
  if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
  return b;
}

template <typename T>
Bytes le_bytes(T v) {
  Bytes b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

void add_common_records(ZipWriter& zip, const std::string& pickle, const Tensor* tensor) {
  zip.add("archive/data.pkl", pickle.data(), pickle.size());
  zip.add("archive/.format_version", "1", 1);
  zip.add("archive/.storage_alignment", "64", 2);
  zip.add("archive/byteorder", "little", 6);
  if (tensor) zip.add("archive/data/0", tensor->numel() ? tensor->data_ptr() : nullptr, tensor->nbytes());
  zip.add("archive/version", "3\n", 2);
  // torch.save writes a random serialization id; any decimal string is accepted.
  const std::string id = "0000000000000000000000000000000000000000";
  zip.add("archive/.data/serialization_id", id.data(), id.size());
  zip.finish();
}

}  // namespace

std::string storage_class_name(DType dtype) {
  for (const auto& n : kNames) {
    if (n.dtype == dtype) return n.storage;
  }
  throw Error(ErrorCode::kInternal, "no storage class for a dtype");
}

bool dtype_from_storage_class(std::string_view name, DType& dtype) {
  for (const auto& n : kNames) {
    if (!name.empty() && name == n.storage) {
      dtype = n.dtype;
      return true;
    }
  }
  return false;
}

std::string torch_dtype_attr(DType dtype) {
  for (const auto& n : kNames) {
    if (n.dtype == dtype) return n.attr;
  }
  throw Error(ErrorCode::kInternal, "no torch dtype name for a dtype");
}

bool dtype_from_torch_attr(std::string_view name, DType& dtype) {
  for (const auto& n : kNames) {
    if (name == n.attr) {
      dtype = n.dtype;
      return true;
    }
  }
  return false;
}

SavedTensor parse_tensor_archive(RandomAccessFile& file, uint64_t base, uint64_t length, const std::string& source) {
  ZipReader zip(file, base, length, source);
  const ZipEntry* pkl = zip.find("data.pkl");
  if (!pkl) throw Error(ErrorCode::kCorrupt, "torch.save archive " + source + " has no data.pkl entry");
  if (const ZipEntry* bo = zip.find("byteorder")) {
    auto order = zip.read_all(*bo, 16);
    if (std::string(reinterpret_cast<const char*>(order.data()), order.size()) != "little") {
      throw Error(ErrorCode::kUnsupported, "torch.save archive " + source + " stores big-endian tensors");
    }
  }
  const auto bytes = zip.read_all(*pkl, kMaxPickleBytes);
  UnpickleOptions opts;
  opts.allow_global = tensor_global;
  opts.allow_persistent_id = true;
  const std::string where = "data.pkl of " + source;
  PyGraph g = unpickle(bytes.data(), bytes.size(), where, opts);
  const PyNode& root = g.at(g.root());
  const bool v3 = root.kind == PyKind::kCall && g.at(root.items[0]).s == "torch._utils._rebuild_tensor_v3";
  if (root.kind != PyKind::kCall || (!v3 && g.at(root.items[0]).s != "torch._utils._rebuild_tensor_v2")) {
    pickle_error(where, "the item is not a tensor (expected torch._utils._rebuild_tensor_v2 or _v3)");
  }
  const PyNode& args = g.at(root.items[1]);
  if (args.items.size() < (v3 ? 7u : 4u)) pickle_error(where, "_rebuild_tensor with too few arguments");
  const PyNode& pers = child(g, args, 0, PyKind::kPersId, where, "storage");
  const PyNode& pid = child(g, pers, 0, PyKind::kTuple, where, "persistent id");
  if (pid.items.size() != 5 || g.at(pid.items[0]).kind != PyKind::kStr || g.at(pid.items[0]).s != "storage") {
    pickle_error(where, "persistent id is not ('storage', type, key, location, numel)");
  }
  const PyNode& type = child(g, pid, 1, PyKind::kGlobal, where, "storage type");
  const PyNode& key = child(g, pid, 2, PyKind::kStr, where, "storage key");
  const PyNode& numel = child(g, pid, 4, PyKind::kInt, where, "storage size");
  SavedTensor t;
  uint64_t storage_bytes_per_element = 0;  // of the pickled numel
  if (v3) {
    const PyNode& dt = child(g, args, 6, PyKind::kGlobal, where, "dtype");
    if (type.s != "torch.storage.UntypedStorage" || dt.s.rfind("torch.", 0) != 0 ||
        !dtype_from_torch_attr(std::string_view(dt.s).substr(6), t.dtype)) {
      pickle_error(where, "unsupported storage " + type.s + " / dtype " + dt.s);
    }
    storage_bytes_per_element = 1;
  } else {
    if (type.s.rfind("torch.", 0) != 0 || !dtype_from_storage_class(std::string_view(type.s).substr(6), t.dtype)) {
      pickle_error(where, "unknown storage type " + type.s);
    }
    storage_bytes_per_element = dtype_size(t.dtype);
  }
  t.storage_offset = child(g, args, 1, PyKind::kInt, where, "storage offset").i;
  t.sizes = int_tuple(g, child(g, args, 2, PyKind::kTuple, where, "size"), where, "size");
  t.strides = int_tuple(g, child(g, args, 3, PyKind::kTuple, where, "stride"), where, "stride");
  if (t.sizes.size() != t.strides.size()) pickle_error(where, "size and stride have different lengths");
  if (t.storage_offset < 0 || numel.i < 0) pickle_error(where, "negative storage offset or size");
  if (key.s.empty() || key.s.find('/') != std::string::npos || key.s.find("..") != std::string::npos) {
    pickle_error(where, "bad storage key '" + key.s + "'");
  }
  const ZipEntry* data = zip.find("data/" + key.s);
  if (!data) throw Error(ErrorCode::kCorrupt, "torch.save archive " + source + " has no entry data/" + key.s);
  uint64_t want = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel.i), storage_bytes_per_element, &want) || want > data->size) {
    throw Error(ErrorCode::kCorrupt, "torch.save archive " + source + ": storage of " + std::to_string(numel.i) +
                                         " elements does not fit its entry of " + std::to_string(data->size) + " bytes");
  }
  // The last element the view reaches must lie inside the storage.
  if (shape_numel(t.sizes) > 0) {
    uint64_t last = static_cast<uint64_t>(t.storage_offset);
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      uint64_t step = 0;
      if (__builtin_mul_overflow(static_cast<uint64_t>(t.sizes[d] - 1), static_cast<uint64_t>(t.strides[d]), &step) ||
          __builtin_add_overflow(last, step, &last)) {
        pickle_error(where, "tensor extent overflows");
      }
    }
    if (last >= want / dtype_size(t.dtype)) {
      throw Error(ErrorCode::kCorrupt, "torch.save archive " + source + ": tensor of size " +
                                           shape_to_string(t.sizes) + " and strides " + shape_to_string(t.strides) +
                                           " reaches element " + std::to_string(last) + " of a storage of " +
                                           std::to_string(want) + " bytes");
    }
  }
  t.data_offset = base + data->data_offset;
  t.data_length = data->size;
  return t;
}

SavedValue parse_value_archive(RandomAccessFile& file, uint64_t base, uint64_t length, uint64_t max_bytes,
                              const std::string& source) {
  if (length > max_bytes) {
    throw Error(ErrorCode::kCorrupt, "value item " + source + " of " + std::to_string(length) +
                                         " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  ZipReader zip(file, base, length, source);
  const ZipEntry* pkl = zip.find("data.pkl");
  if (!pkl) throw Error(ErrorCode::kCorrupt, "torch.save archive " + source + " has no data.pkl entry");
  const auto bytes = zip.read_all(*pkl, kMaxPickleBytes);
  UnpickleOptions opts;
  // The graph is only inspected for a scalar at its root and never
  // executed, so any class may appear in it: a non-scalar is kept opaque.
  opts.allow_global = [](std::string_view, std::string_view) { return true; };
  opts.allow_persistent_id = true;
  PyGraph g = unpickle(bytes.data(), bytes.size(), "data.pkl of " + source, opts);
  const PyNode& root = g.at(g.root());
  SavedValue v;
  switch (root.kind) {
    case PyKind::kInt: v.kind = ValueKind::kInt64; v.encoded = le_bytes<int64_t>(root.i); return v;
    case PyKind::kFloat: v.kind = ValueKind::kDouble; v.encoded = le_bytes<double>(root.f); return v;
    case PyKind::kBool: v.kind = ValueKind::kBool; v.encoded = Bytes{std::byte(root.b ? 1 : 0)}; return v;
    case PyKind::kStr: v.kind = ValueKind::kString; v.encoded = to_bytes(root.s); return v;
    case PyKind::kBytes: v.kind = ValueKind::kBytes; v.encoded = to_bytes(root.s); return v;
    case PyKind::kCall: {
      const PyNode& fn = g.at(root.items[0]);
      const PyNode& args = g.at(root.items[1]);
      if (fn.s == "_codecs.encode" && args.items.size() == 2 && g.at(args.items[0]).kind == PyKind::kStr &&
          g.at(args.items[1]).kind == PyKind::kStr && g.at(args.items[1]).s == "latin1") {
        v.kind = ValueKind::kBytes;
        v.encoded = to_bytes(utf8_to_latin1(g.at(args.items[0]).s, source));
        return v;
      }
      if ((fn.s == "builtins.bytes" || fn.s == "__builtin__.bytes") && args.items.empty()) {
        v.kind = ValueKind::kBytes;
        return v;
      }
      break;
    }
    default:
      break;
  }
  v.kind = ValueKind::kBytes;
  v.encoded.resize(length);
  if (length > 0 && file.read_full(v.encoded.data(), length, base) != length) {
    throw Error(ErrorCode::kCorrupt, "value item " + source + ": the file ends before the item's end");
  }
  return v;
}

void write_tensor_archive(ZipWriter::Sink sink, const Tensor& tensor) {
  Pickler p;
  const std::string storage = storage_class_name(tensor.dtype());
  const bool v3 = storage.empty();
  p.global("torch._utils", v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
  p.mark();
  // persistent id ('storage', torch.XStorage, '0', 'cpu', numel)
  p.mark();
  p.str("storage");
  if (v3) {
    p.global("torch.storage", "UntypedStorage");
  } else {
    p.global("torch", storage);
  }
  p.str("0");
  p.str("cpu");
  p.integer(v3 ? static_cast<int64_t>(tensor.nbytes()) : tensor.numel());
  p.tuple_from_mark();
  p.binpersid();
  p.integer(0);
  p.mark();
  for (int64_t s : tensor.sizes()) p.integer(s);
  p.tuple_from_mark();
  p.mark();
  for (int64_t s : contiguous_strides(tensor.sizes())) p.integer(s);
  p.tuple_from_mark();
  p.boolean(false);
  p.global("collections", "OrderedDict");
  p.tuple(0);
  p.reduce();
  if (v3) p.global("torch", torch_dtype_attr(tensor.dtype()));
  p.tuple_from_mark();
  p.reduce();
  p.stop();
  ZipWriter zip(std::move(sink));
  add_common_records(zip, p.data(), &tensor);
}

void write_value_archive(ZipWriter::Sink sink, ValueKind kind, const Bytes& encoded) {
  Pickler p;
  auto need = [&](size_t n) {
    if (encoded.size() != n) throw Error(ErrorCode::kInternal, "value encoding of the wrong size");
  };
  switch (kind) {
    case ValueKind::kInt64: {
      need(8);
      int64_t v;
      std::memcpy(&v, encoded.data(), 8);
      p.integer(v);
      break;
    }
    case ValueKind::kDouble: {
      need(8);
      double v;
      std::memcpy(&v, encoded.data(), 8);
      p.real(v);
      break;
    }
    case ValueKind::kBool: need(1); p.boolean(encoded[0] != std::byte(0)); break;
    case ValueKind::kString: p.str(std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size())); break;
    case ValueKind::kBytes: p.bytes(encoded.data(), encoded.size()); break;
  }
  p.stop();
  ZipWriter zip(std::move(sink));
  add_common_records(zip, p.data(), nullptr);
}

}  // namespace dcpp::torch_dcp
