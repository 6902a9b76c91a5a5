// Safetensors headers: the hardened parser (simdjson) and the file writer.
// Format: 8 bytes little-endian header length N, N bytes of JSON
// {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [b, e]}},
// then the data section; offsets are relative to its start.
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "dcpp/error.h"
#include "dcpp/safetensors_storage.h"
#include "storage/safetensors/interop_common.h"
#include "storage/safetensors/safetensors_format.h"

namespace dcpp {

namespace {

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {DType::kBool, "BOOL"},       {DType::kUInt8, "U8"},          {DType::kInt8, "I8"},
    {DType::kInt16, "I16"},       {DType::kFloat16, "F16"},       {DType::kBFloat16, "BF16"},
    {DType::kInt32, "I32"},       {DType::kFloat32, "F32"},       {DType::kFloat64, "F64"},
    {DType::kInt64, "I64"},       {DType::kFloat8E4M3FN, "F8_E4M3"}, {DType::kFloat8E5M2, "F8_E5M2"},
};
constexpr const char* kUnsupportedNames[] = {"U16", "U32", "U64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};

[[noreturn]] void corrupt(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kCorrupt, "safetensors file " + source + ": " + what);
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& d : kDTypeNames) {
    if (d.dtype == dtype) return d.name;
  }
  throw Error(ErrorCode::kInternal, "no safetensors name for a dtype");
}

DType dtype_from_safetensors(std::string_view name, const std::string& key) {
  for (const auto& d : kDTypeNames) {
    if (name == d.name) return d.dtype;
  }
  for (const char* n : kUnsupportedNames) {
    if (name == n) {
      throw Error(ErrorCode::kUnsupported, "tensor '" + key + "' has safetensors dtype " + std::string(name) +
                                               ", which dcpp has no dtype for");
    }
  }
  throw Error(ErrorCode::kCorrupt, "tensor '" + key + "' has unknown safetensors dtype '" + std::string(name) + "'");
}

bool torch_hf_supports(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: case DType::kFloat32: case DType::kFloat64: case DType::kBFloat16:
    case DType::kInt8: case DType::kUInt8: case DType::kInt16: case DType::kInt32: case DType::kInt64:
      return true;
    default:
      return false;
  }
}

SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t file_size, const std::string& source) {
  if (json.size() > kMaxSafetensorsHeader) {
    corrupt(source, "header of " + std::to_string(json.size()) + " bytes exceeds the cap of " +
                        std::to_string(kMaxSafetensorsHeader));
  }
  if (file_size < 8 || json.size() > file_size - 8) {
    corrupt(source, "header length " + std::to_string(json.size()) + " runs past the end of the " +
                        std::to_string(file_size) + "-byte file");
  }
  if (json.empty() || json.front() != '{') corrupt(source, "header does not start with '{' (bad magic)");
  SafetensorsHeader header;
  header.data_start = 8 + json.size();
  const uint64_t data_size = file_size - header.data_start;

  simdjson::dom::parser parser;
  simdjson::padded_string padded(json.data(), json.size());
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root)) corrupt(source, std::string("bad header JSON: ") + simdjson::error_message(err));
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) corrupt(source, "header is not a JSON object");

  std::set<std::string> seen;
  for (auto field : obj) {
    std::string key(field.key);
    if (!seen.insert(key).second) corrupt(source, "duplicate key '" + key + "' in the header");
    if (key == "__metadata__") {
      simdjson::dom::object meta;
      if (field.value.get_object().get(meta)) corrupt(source, "__metadata__ is not an object");
      for (auto m : meta) {
        std::string_view v;
        if (m.value.get_string().get(v)) {
          corrupt(source, "__metadata__ value of '" + std::string(m.key) + "' is not a string");
        }
        header.metadata[std::string(m.key)] = std::string(v);
      }
      continue;
    }
    simdjson::dom::object t;
    if (field.value.get_object().get(t)) corrupt(source, "entry '" + key + "' is not an object");
    std::string_view dtype_name;
    simdjson::dom::array shape_arr, offs_arr;
    if (t["dtype"].get_string().get(dtype_name)) corrupt(source, "tensor '" + key + "' has no string dtype");
    if (t["shape"].get_array().get(shape_arr)) corrupt(source, "tensor '" + key + "' has no shape array");
    if (t["data_offsets"].get_array().get(offs_arr)) corrupt(source, "tensor '" + key + "' has no data_offsets array");
    SafetensorsEntry e;
    e.name = key;
    e.dtype = dtype_from_safetensors(dtype_name, key);
    uint64_t numel = 1;
    for (auto d : shape_arr) {
      uint64_t v;
      if (d.get_uint64().get(v) || v > static_cast<uint64_t>(INT64_MAX)) {
        corrupt(source, "tensor '" + key + "' has a shape entry that is not a non-negative integer");
      }
      if (e.shape.size() >= 64) corrupt(source, "tensor '" + key + "' has more than 64 dimensions");
      e.shape.push_back(static_cast<int64_t>(v));
      if (__builtin_mul_overflow(numel, v, &numel)) corrupt(source, "tensor '" + key + "': element count overflows");
    }
    std::vector<uint64_t> offs;
    for (auto d : offs_arr) {
      uint64_t v;
      if (d.get_uint64().get(v)) corrupt(source, "tensor '" + key + "' has a data offset that is not an integer");
      offs.push_back(v);
      if (offs.size() > 2) break;
    }
    if (offs.size() != 2) corrupt(source, "tensor '" + key + "' needs exactly two data_offsets");
    e.begin = offs[0];
    e.end = offs[1];
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &nbytes)) {
      corrupt(source, "tensor '" + key + "': byte size overflows");
    }
    if (e.end < e.begin || e.end - e.begin != nbytes) {
      corrupt(source, "tensor '" + key + "' of shape " + shape_to_string(e.shape) + " and dtype " +
                          std::string(dtype_name) + " needs " + std::to_string(nbytes) + " bytes but data_offsets [" +
                          std::to_string(e.begin) + ", " + std::to_string(e.end) + ") hold " +
                          std::to_string(e.end >= e.begin ? e.end - e.begin : 0));
    }
    if (e.end > data_size) {
      corrupt(source, "tensor '" + key + "' data [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                          ") runs past the data section of " + std::to_string(data_size) + " bytes (byte offset " +
                          std::to_string(header.data_start + e.end) + " of the file)");
    }
    header.tensors.push_back(std::move(e));
  }
  // No two tensors may share bytes.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : header.tensors) {
    if (e.end > e.begin) by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      corrupt(source, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                          "' overlap at data offset " + std::to_string(by_offset[i]->begin));
    }
  }
  return header;
}

SafetensorsHeader read_safetensors_header(FileSystem& fs, const std::string& path) {
  std::unique_ptr<RandomAccessFile> f = fs.open_read(path);
  const uint64_t size = fs.file_size(path);
  if (size < 8) corrupt(path, "file of " + std::to_string(size) + " bytes is too short for a header length");
  unsigned char len_bytes[8];
  if (f->read_full(len_bytes, 8, 0) != 8) corrupt(path, "cannot read the header length");
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= static_cast<uint64_t>(len_bytes[i]) << (8 * i);
  if (len > kMaxSafetensorsHeader) {
    corrupt(path, "header length " + std::to_string(len) + " exceeds the cap of " + std::to_string(kMaxSafetensorsHeader));
  }
  if (len > size - 8) {
    corrupt(path, "header length " + std::to_string(len) + " runs past the end of the " + std::to_string(size) +
                      "-byte file");
  }
  std::string json(static_cast<size_t>(len), '\0');
  if (f->read_full(json.data(), json.size(), 8) != len) corrupt(path, "file ends inside the header");
  return parse_safetensors_header(json, size, path);
}

namespace safetensors_detail {

std::vector<uint64_t> write_safetensors_file(FileSystem& fs, const std::string& path,
                                             const std::vector<FileTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata) {
  std::string json = "{";
  bool first = true;
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& [k, v] : metadata) {
      if (!f2) json += ",";
      f2 = false;
      json += interop::json_string(k) + ":" + interop::json_string(v);
    }
    json += "}";
    first = false;
  }
  uint64_t at = 0;
  std::vector<uint64_t> rel;
  for (const auto& t : tensors) {
    const uint64_t n = static_cast<uint64_t>(shape_numel(t.shape)) * dtype_size(t.dtype);
    if (!first) json += ",";
    first = false;
    json += interop::json_string(t.key) + ":{\"dtype\":\"" + std::string(safetensors_dtype_name(t.dtype)) +
            "\",\"shape\":" + interop::shape_json(t.shape) + ",\"data_offsets\":[" + std::to_string(at) + "," +
            std::to_string(at + n) + "]}";
    rel.push_back(at);
    at += n;
  }
  json += "}";
  // Pad with spaces so the data section starts 8-byte aligned (as Hugging Face's writer does).
  while ((8 + json.size()) % 8) json.push_back(' ');
  const uint64_t data_start = 8 + json.size();
  std::unique_ptr<WritableFile> f = fs.open_write(path);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((json.size() >> (8 * i)) & 0xff);
  interop::write_at(*f, len, 8, 0);
  interop::write_at(*f, json.data(), json.size(), 8);
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    Tensor data = t.fetch();
    if (data.sizes() != t.shape) {
      throw Error(ErrorCode::kInternal, "tensor '" + t.key + "' resolved to shape " + shape_to_string(data.sizes()) +
                                            ", expected " + shape_to_string(t.shape));
    }
    if (data.dtype() != t.dtype) data = data.to(t.dtype);
    if (!data.is_contiguous()) data = data.contiguous();
    offsets.push_back(data_start + rel[i]);
    if (data.nbytes() > 0) interop::write_at(*f, data.data_ptr(), data.nbytes(), data_start + rel[i]);
  }
  f->sync();
  f->close();
  return offsets;
}

namespace {
const std::pair<ValueKind, const char*> kKindNames[] = {
    {ValueKind::kInt64, "int64"}, {ValueKind::kDouble, "double"}, {ValueKind::kBool, "bool"},
    {ValueKind::kString, "string"}, {ValueKind::kBytes, "bytes"}};
}

std::string encode_values_json(const std::map<std::string, std::pair<ValueKind, Bytes>>& values) {
  std::string json = "{";
  bool first = true;
  for (const auto& [key, kv] : values) {
    if (!first) json += ",";
    first = false;
    const char* kind = "bytes";
    for (const auto& [k, n] : kKindNames) {
      if (k == kv.first) kind = n;
    }
    json += interop::json_string(key) + ":{\"kind\":\"" + kind + "\",\"hex\":\"" +
            interop::to_hex(kv.second.data(), kv.second.size()) + "\"}";
  }
  return json + "}";
}

std::map<std::string, std::pair<ValueKind, Bytes>> decode_values_json(const std::string& json,
                                                                      const std::string& source) {
  std::map<std::string, std::pair<ValueKind, Bytes>> out;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj)) corrupt(source, "__metadata__ dcpp_values is not a JSON object");
  for (auto field : obj) {
    std::string_view kind, hex;
    if (field.value["kind"].get_string().get(kind) || field.value["hex"].get_string().get(hex)) {
      corrupt(source, "dcpp_values entry '" + std::string(field.key) + "' lacks kind or hex");
    }
    std::optional<ValueKind> k;
    for (const auto& [vk, n] : kKindNames) {
      if (kind == n) k = vk;
    }
    if (!k) corrupt(source, "dcpp_values entry '" + std::string(field.key) + "' has unknown kind '" + std::string(kind) + "'");
    Bytes bytes;
    if (!interop::from_hex(std::string(hex), bytes)) {
      corrupt(source, "dcpp_values entry '" + std::string(field.key) + "' has bad hex");
    }
    out[std::string(field.key)] = {*k, std::move(bytes)};
  }
  return out;
}

std::string full_file_name(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index, count);
  return buf;
}

std::string sharded_file_name(int rank, size_t index, size_t count) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "shard-%05d-model-%05zu-of-%05zu.safetensors", rank, index, count);
  return buf;
}

std::vector<FullLayoutFile> write_full_layout(FileSystem& fs, const std::string& dir,
                                              const std::vector<FileTensor>& tensors,
                                              const std::map<std::string, std::pair<ValueKind, Bytes>>& values,
                                              uint64_t max_shard_size) {
  std::vector<std::vector<size_t>> groups(1);
  uint64_t in_group = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t n = static_cast<uint64_t>(shape_numel(tensors[i].shape)) * dtype_size(tensors[i].dtype);
    if (max_shard_size > 0 && !groups.back().empty() && in_group + n > max_shard_size) {
      groups.emplace_back();
      in_group = 0;
    }
    groups.back().push_back(i);
    in_group += n;
  }
  std::vector<FullLayoutFile> files;
  uint64_t total = 0;
  std::string weight_map;
  for (size_t g = 0; g < groups.size(); ++g) {
    FullLayoutFile file;
    file.name = full_file_name(g + 1, groups.size());
    std::vector<FileTensor> ts;
    for (size_t i : groups[g]) ts.push_back(tensors[i]);
    std::map<std::string, std::string> meta{{"format", "pt"}};
    if (g == 0 && !values.empty()) meta[kValuesKey] = encode_values_json(values);
    file.offsets = write_safetensors_file(fs, interop::join(dir, file.name), ts, meta);
    for (const auto& t : ts) {
      const uint64_t n = static_cast<uint64_t>(shape_numel(t.shape)) * dtype_size(t.dtype);
      file.keys.push_back(t.key);
      file.lengths.push_back(n);
      total += n;
      if (!weight_map.empty()) weight_map += ",";
      weight_map += interop::json_string(t.key) + ":" + interop::json_string(file.name);
    }
    files.push_back(std::move(file));
  }
  const std::string index = "{\"metadata\":{\"total_size\":" + std::to_string(total) + "},\"weight_map\":{" +
                            weight_map + "}}\n";
  const std::string index_path = interop::join(dir, std::string(kSafetensorsIndexName));
  std::unique_ptr<WritableFile> f = fs.open_write(index_path);
  interop::write_at(*f, index.data(), index.size(), 0);
  f->sync();
  f->close();
  return files;
}

void check_torch_compatible(const std::string& key, DType dtype) {
  if (!torch_hf_supports(dtype)) {
    throw Error(ErrorCode::kUnsupported,
                "tensor '" + key + "' has dtype " + std::string(dtype_name(dtype)) + " (safetensors " +
                    std::string(safetensors_dtype_name(dtype)) +
                    "), which PyTorch's HuggingFaceStorageReader cannot load (it maps only F16, F32, F64, BF16, I8, "
                    "U8, I16, I32, I64); save without torch_compatible or convert the tensor first");
  }
}

}  // namespace safetensors_detail
}  // namespace dcpp
