// Encoding of non-tensor state dict values (planner.h) and the small helpers
// of metadata.h.
#include <bit>
#include <cstring>

#include "dcpp/error.h"
#include "dcpp/metadata.h"
#include "dcpp/planner.h"

namespace dcpp {

namespace {

static_assert(std::endian::native == std::endian::little, "dcpp stores values little-endian");

template <typename T>
Bytes encode_pod(T v) {
  Bytes b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

template <typename T>
T decode_pod(const Bytes& bytes, ValueKind kind, const std::string& key) {
  if (bytes.size() != sizeof(T)) {
    throw Error(ErrorCode::kCorrupt, "value '" + key + "' of kind " + std::string(value_kind_name(kind)) +
                                         " has " + std::to_string(bytes.size()) + " bytes, expected " +
                                         std::to_string(sizeof(T)));
  }
  T v;
  std::memcpy(&v, bytes.data(), sizeof(T));
  return v;
}

}  // namespace

std::string_view value_kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::kInt64: return "int64";
    case ValueKind::kDouble: return "double";
    case ValueKind::kBool: return "bool";
    case ValueKind::kString: return "string";
    case ValueKind::kBytes: return "bytes";
  }
  return "unknown";
}

uint64_t Metadata::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [key, t] : tensors) {
    for (const auto& c : t.chunks) total += c.location.byte_length;
  }
  for (const auto& [key, v] : values) total += v.location.byte_length;
  return total;
}

ValueKind value_kind(const StateValue& value) {
  if (value.holds<int64_t>()) return ValueKind::kInt64;
  if (value.holds<double>()) return ValueKind::kDouble;
  if (value.holds<bool>()) return ValueKind::kBool;
  if (value.holds<std::string>()) return ValueKind::kString;
  if (value.holds<Bytes>()) return ValueKind::kBytes;
  throw Error(ErrorCode::kInvalidArgument, "a " + value.type_name() + " is not a storable value");
}

Bytes encode_value(const StateValue& value) {
  switch (value_kind(value)) {
    case ValueKind::kInt64: return encode_pod<int64_t>(value.as<int64_t>());
    case ValueKind::kDouble: return encode_pod<double>(value.as<double>());
    case ValueKind::kBool: return Bytes{std::byte{static_cast<unsigned char>(value.as<bool>() ? 1 : 0)}};
    case ValueKind::kString: {
      const auto& s = value.as<std::string>();
      Bytes b(s.size());
      if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());  // an empty Bytes may have no buffer
      return b;
    }
    case ValueKind::kBytes: return value.as<Bytes>();
  }
  throw Error(ErrorCode::kInternal, "unreachable value kind");
}

StateValue decode_value(ValueKind kind, const Bytes& bytes, const std::string& key) {
  switch (kind) {
    case ValueKind::kInt64: return StateValue(decode_pod<int64_t>(bytes, kind, key));
    case ValueKind::kDouble: return StateValue(decode_pod<double>(bytes, kind, key));
    case ValueKind::kBool: {
      auto b = decode_pod<uint8_t>(bytes, kind, key);
      if (b > 1) throw Error(ErrorCode::kCorrupt, "bool value '" + key + "' holds byte " + std::to_string(b));
      return StateValue(b == 1);
    }
    case ValueKind::kString:
      return StateValue(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    case ValueKind::kBytes: return StateValue(bytes);
  }
  throw Error(ErrorCode::kCorrupt, "value '" + key + "' has unknown kind " +
                                       std::to_string(static_cast<int>(kind)));
}

}  // namespace dcpp
