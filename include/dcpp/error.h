// dcpp::Error — the one exception type dcpp throws.
//
// Every failure a caller can act on (bad input, I/O, communication, a peer rank failing, a timeout) is reported
// as a dcpp::Error carrying an ErrorCode and a message that names the key, file, byte offset and rank involved
// where they are known. So is a broken invariant of dcpp itself (code kInternal), not an assert: an assert
// vanishes in Release builds, or aborts the process mid-collective; an Error reaches every rank and is reported.
// Thread-safety: Error is an immutable value.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace dcpp {

enum class ErrorCode {
  kInvalidArgument,  // the caller asked for something impossible (shape, dtype, option)
  kNotFound,         // a key, file or checkpoint that should exist does not
  kCorrupt,          // bytes on disk fail a checksum or a structural check
  kIo,               // the operating system refused a file operation
  kComm,             // a collective failed, usually because another rank failed
  kTimeout,          // a collective did not complete within its deadline
  kUnsupported,      // valid input that dcpp cannot handle (dtype, format version, class)
  kInternal,         // an invariant of dcpp itself broke
};

std::string_view error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }
  // The message without the "[Code] " prefix that what() carries.
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

// Throws Error(kIo) for the current errno: "<what>: <strerror> (errno N)".
[[noreturn]] void throw_errno(const std::string& what);
[[noreturn]] void throw_errno(const std::string& what, int err);

}  // namespace dcpp
