// Printing in PyTorch's style: one common number format for all shown
// values, right-aligned to a common width, nested brackets indented under
// "tensor(", and "..." summaries of the middle of long dims.
#include <cmath>
#include <cstdio>
#include <ostream>

#include "dcpp/tensor.h"
#include "tensor/strided_copy.h"

namespace dcpp {

namespace {

constexpr int64_t kEdgeItems = 3;
constexpr size_t kIndent = 7;  // strlen("tensor(")

std::string size_tuple(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

class Printer {
 public:
  Printer(const Tensor& t, bool summarize) : t_(t), summarize_(summarize) {}

  std::string render() {
    collect(0, 0);
    choose_format();
    std::string out;
    size_t next = 0;
    emit(out, 0, next);
    return out;
  }

 private:
  // Indices of dim d that are shown: all, or the edges around a "...".
  bool elided(int64_t d) const { return summarize_ && t_.sizes()[d] > 2 * kEdgeItems; }

  template <typename F>
  void for_shown(int64_t d, F&& f) const {
    const int64_t n = t_.sizes()[d];
    if (elided(d)) {
      for (int64_t i = 0; i < kEdgeItems; ++i) f(i, false);
      f(-1, true);
      for (int64_t i = n - kEdgeItems; i < n; ++i) f(i, false);
    } else {
      for (int64_t i = 0; i < n; ++i) f(i, false);
    }
  }

  // Gathers the shown values in print order.
  void collect(int64_t d, int64_t offset) {
    if (d == t_.dim()) {
      const auto* base = static_cast<const std::byte*>(t_.data_ptr());
      values_.push_back(detail::load_double(t_.dtype(), base + offset * static_cast<int64_t>(t_.element_size())));
      return;
    }
    for_shown(d, [&](int64_t i, bool ellipsis) {
      if (!ellipsis) collect(d + 1, offset + i * t_.strides()[d]);
    });
  }

  void choose_format() {
    const DType dt = t_.dtype();
    if (dt == DType::kBool) {
      for (double v : values_) texts_.push_back(v != 0 ? "True" : "False");
    } else if (!is_floating_point(dt)) {
      for (double v : values_) texts_.push_back(std::to_string(static_cast<int64_t>(v)));
    } else {
      bool all_int = true;
      double max_abs = 0;
      double min_nonzero = INFINITY;
      for (double v : values_) {
        if (!std::isfinite(v)) continue;
        if (v != std::trunc(v)) all_int = false;
        const double a = std::fabs(v);
        max_abs = std::max(max_abs, a);
        if (a != 0) min_nonzero = std::min(min_nonzero, a);
      }
      enum { kInt, kFixed, kSci } mode;
      if (all_int && max_abs < 1e8) mode = kInt;
      else if (max_abs < 1e8 && (min_nonzero >= 1e-4 || min_nonzero == INFINITY)) mode = kFixed;
      else mode = kSci;
      char buf[64];
      for (double v : values_) {
        if (std::isnan(v)) {
          texts_.push_back("nan");
        } else if (std::isinf(v)) {
          texts_.push_back(v > 0 ? "inf" : "-inf");
        } else {
          if (mode == kInt) std::snprintf(buf, sizeof buf, "%.0f.", v);
          else if (mode == kFixed) std::snprintf(buf, sizeof buf, "%.4f", v);
          else std::snprintf(buf, sizeof buf, "%.4e", v);
          texts_.push_back(buf);
        }
      }
    }
    for (const auto& s : texts_) width_ = std::max(width_, s.size());
  }

  void emit(std::string& out, int64_t d, size_t& next) const {
    if (d == t_.dim()) {
      const std::string& s = texts_[next++];
      out.append(width_ - s.size(), ' ');
      out += s;
      return;
    }
    out += '[';
    const int64_t rest = t_.dim() - d;  // dims below and including d
    std::string sep = ",";
    if (rest == 1) {
      sep += ' ';
    } else {
      sep.append(static_cast<size_t>(rest - 1), '\n');
      sep.append(kIndent + static_cast<size_t>(d) + 1, ' ');
    }
    bool first = true;
    for_shown(d, [&](int64_t, bool ellipsis) {
      if (!first) out += sep;
      first = false;
      if (ellipsis) out += rest == 1 ? " ..." : "...";  // PyTorch's spacing
      else emit(out, d + 1, next);
    });
    out += ']';
  }

  const Tensor& t_;
  bool summarize_;
  std::vector<double> values_;
  std::vector<std::string> texts_;
  size_t width_ = 0;
};

}  // namespace

std::string Tensor::to_string(int64_t max_elements) const {
  if (!defined()) return "tensor(undefined)";
  const std::string suffix = "dtype=" + std::string(dtype_name(dtype_)) + ")";
  if (is_meta()) return "tensor(..., device='meta', size=" + size_tuple(sizes_) + ", " + suffix;
  if (is_cuda()) {
    return "tensor(..., device='" + device_string(device_) + "', size=" + size_tuple(sizes_) + ", " + suffix;
  }
  if (numel() == 0) {
    if (dim() == 1) return "tensor([], " + suffix;
    return "tensor([], size=" + size_tuple(sizes_) + ", " + suffix;
  }
  Printer p(*this, numel() > max_elements);
  return "tensor(" + p.render() + ", " + suffix;
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace dcpp
