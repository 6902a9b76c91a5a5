// Private to dcpp: the byte form of messages between ranks — integers and
// length-prefixed strings appended to a Blob, read back with bounds checks.
// Native-endian: every rank of a job runs the same build on the same kind of
// host. A WireReader reads a blob it does not own; a short blob is
// Error(kComm) naming the rank it came from.
// Thread-safety: a writer or reader is used by one thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "dcpp/dtype.h"
#include "dcpp/error.h"

namespace dcpp::comm_detail {

class WireWriter {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u64(uint64_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(const std::string& s) {
    u64(s.size());
    out_ += s;
  }
  void shape(const Shape& s) {
    u64(s.size());
    for (int64_t v : s) i64(v);
  }
  void bytes(const char* data, size_t n) { out_.append(data, n); }
  size_t size() const { return out_.size(); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class WireReader {
 public:
  // `from`: the rank that sent `in`, for error messages (-1: not known).
  explicit WireReader(const std::string& in, int from = -1, size_t pos = 0) : in_(in), from_(from), pos_(pos) {}
  uint8_t u8() {
    need(1);
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::copy_n(in_.data() + pos_, 8, reinterpret_cast<char*>(&v));
    pos_ += 8;
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string str() {
    uint64_t n = u64();
    need(n);
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  Shape shape() {
    uint64_t n = u64();
    if (n > (in_.size() - pos_) / 8) truncated();
    Shape s(n);
    for (auto& v : s) v = i64();
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    pos_ += n;
  }
  bool done() const { return pos_ == in_.size(); }
  size_t position() const { return pos_; }

 private:
  void need(uint64_t n) const {
    if (pos_ > in_.size() || n > in_.size() - pos_) truncated();
  }
  [[noreturn]] void truncated() const {
    throw Error(ErrorCode::kComm, from_ < 0 ? std::string("truncated message between ranks")
                                            : "truncated message from rank " + std::to_string(from_));
  }
  const std::string& in_;
  int from_;
  size_t pos_;
};

}  // namespace dcpp::comm_detail
