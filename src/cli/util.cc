// Presentation helpers of the dcpp command (cli.h).
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "cli/cli.h"

namespace dcpp::cli {

int exit_code_for(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kNotFound: return kExitNotCheckpoint;
    case ErrorCode::kIo: return kExitIo;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    default: return kExitProblems;  // kCorrupt, kUnsupported and the rest: the checkpoint cannot be used
  }
}

std::string human_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", bytes);
    return buf;
  }
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  // 1023.96 KiB would print as "1024.0 KiB": move up a unit instead.
  if (v >= 1023.95 && u < 6) {
    v /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string human_rate(uint64_t bytes, double seconds) {
  if (seconds < 1e-6) return "-";
  return human_bytes(static_cast<uint64_t>(std::llround(static_cast<double>(bytes) / seconds))) + "/s";
}

std::string human_time(int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  s += "]";
  return s;
}

// ---- Table ----

Table::Table(std::vector<std::string> header, std::vector<bool> right_aligned) : right_(std::move(right_aligned)) {
  right_.resize(header.size(), false);
  rows_.push_back(std::move(header));
}

void Table::add(std::vector<std::string> row) {
  row.resize(rows_.front().size());
  rows_.push_back(std::move(row));
}

std::string Table::render() const {
  std::vector<size_t> width(rows_.front().size(), 0);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const size_t pad = width[c] - row[c].size();
      const bool last = c + 1 == row.size();
      if (right_[c]) {
        line += std::string(pad, ' ') + row[c];
      } else {
        line += row[c];
        if (!last) line += std::string(pad, ' ');
      }
      if (!last) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

// ---- Progress ----

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled && total > 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { clear(); }

void Progress::add(uint64_t bytes) {
  if (!enabled_) return;
  done_ += bytes;
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most ten times a second: a terminal is slower than a disk cache.
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  draw();
}

void Progress::draw() {
  constexpr int kBarWidth = 30;
  const double fraction = total_ ? std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_)) : 1.0;
  const int filled = static_cast<int>(fraction * kBarWidth);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string bar(filled, '#');
  bar += std::string(kBarWidth - filled, '.');
  std::printf("\r\033[K%s [%s] %3d%%  %s / %s  %s", label_.c_str(), bar.c_str(), static_cast<int>(fraction * 100),
              human_bytes(done_).c_str(), human_bytes(total_).c_str(), human_rate(done_, seconds).c_str());
  std::fflush(stdout);
  drawn_ = true;
}

void Progress::clear() {
  if (!enabled_ || !drawn_) return;
  std::printf("\r\033[K");
  std::fflush(stdout);
  drawn_ = false;
}

// ---- Json ----

void Json::separator() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ",";
    first_.back() = false;
    newline();
  }
}

void Json::newline() {
  out_ += '\n';
  out_.append(first_.size() * 2, ' ');
}

Json& Json::begin_object() {
  separator();
  out_ += "{";
  first_.push_back(true);
  return *this;
}

Json& Json::end_object() {
  const bool empty = first_.back();
  first_.pop_back();
  if (!empty) newline();
  out_ += "}";
  return *this;
}

Json& Json::begin_array() {
  separator();
  out_ += "[";
  first_.push_back(true);
  return *this;
}

Json& Json::end_array() {
  const bool empty = first_.back();
  first_.pop_back();
  if (!empty) newline();
  out_ += "]";
  return *this;
}

Json& Json::key(std::string_view k) {
  value(k);
  out_ += ": ";
  after_key_ = true;
  return *this;
}

Json& Json::value(std::string_view v) {
  separator();
  out_ += '"';
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out_ += "\\\""; break;
      case '\\': out_ += "\\\\"; break;
      case '\n': out_ += "\\n"; break;
      case '\r': out_ += "\\r"; break;
      case '\t': out_ += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out_ += buf;
        } else {
          out_ += ch;
        }
    }
  }
  out_ += '"';
  return *this;
}

Json& Json::value(uint64_t v) {
  separator();
  out_ += std::to_string(v);
  return *this;
}

Json& Json::value(int64_t v) {
  separator();
  out_ += std::to_string(v);
  return *this;
}

Json& Json::value(double v) {
  separator();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  out_ += buf;
  return *this;
}

Json& Json::value(bool v) {
  separator();
  out_ += v ? "true" : "false";
  return *this;
}

Json& Json::null() {
  separator();
  out_ += "null";
  return *this;
}

Json& Json::raw(std::string_view json) {
  separator();
  while (!json.empty() && (json.back() == '\n' || json.back() == ' ')) json.remove_suffix(1);
  out_ += json;
  return *this;
}

Json& Json::shape(const std::vector<int64_t>& s) {
  // Shapes stay on one line: they are short and read better that way.
  separator();
  out_ += shape_text(s);
  return *this;
}

}  // namespace dcpp::cli
