#include "dcpp/error.h"

#include <cerrno>
#include <cstring>

namespace dcpp {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kCorrupt: return "Corrupt";
    case ErrorCode::kIo: return "Io";
    case ErrorCode::kComm: return "Comm";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kInternal: return "Internal";
  }
  return "Unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error("[" + std::string(error_code_name(code)) + "] " + message),
      code_(code),
      message_(message) {}

void throw_errno(const std::string& what, int err) {
  throw Error(ErrorCode::kIo, what + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")");
}

void throw_errno(const std::string& what) { throw_errno(what, errno); }

}  // namespace dcpp
