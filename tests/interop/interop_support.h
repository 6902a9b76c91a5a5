// Test support for the interop tests: PyTorch's dumps of expected values.
#pragma once

#include <simdjson.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/state_dict.h"

namespace dcpp::interop_test {

inline std::string data_dir() { return DCPP_INTEROP_DATA; }

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Expected {
  std::string key;
  bool is_tensor = true;
  Tensor full;
  StateValue value;
};

// manifest.json: [{"key", "kind": tensor|int|float|bool|str, "dtype", "shape", "file" | "value"}].
inline std::vector<Expected> read_expected(const std::string& dir) {
  simdjson::dom::parser parser;
  simdjson::padded_string json(slurp(dir + "/manifest.json"));
  std::vector<Expected> out;
  for (auto e : parser.parse(json).get_array()) {
    Expected x;
    x.key = std::string(std::string_view(e["key"]));
    const std::string kind = std::string(std::string_view(e["kind"]));
    if (kind == "tensor") {
      Shape shape;
      for (auto d : e["shape"].get_array()) shape.push_back(int64_t(d));
      x.full = Tensor::empty(shape, dtype_from_name(std::string_view(e["dtype"])));
      const std::string bytes = slurp(dir + "/" + std::string(std::string_view(e["file"])));
      if (bytes.size() != x.full.nbytes()) throw Error(ErrorCode::kCorrupt, "bad dump for " + x.key);
      if (!bytes.empty()) std::memcpy(x.full.data_ptr(), bytes.data(), bytes.size());
    } else {
      x.is_tensor = false;
      if (kind == "int") x.value = int64_t(e["value"]);
      if (kind == "float") x.value = double(e["value"]);
      if (kind == "bool") x.value = bool(e["value"]);
      if (kind == "str") x.value = std::string(std::string_view(e["value"]));
    }
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace dcpp::interop_test
