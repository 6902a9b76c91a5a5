// This process's memory as Linux reports it (/proc/self): the benchmarks'
// resident-set and peak figures.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace dcpp::bench {

// A "Vm…" field of /proc/self/status in KiB (0 when absent).
inline uint64_t proc_status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::strtoull(line.c_str() + n + 1, nullptr, 10);
  }
  return 0;
}

// Resets VmHWM to the current RSS (Linux ≥ 4.0); false when not permitted.
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return static_cast<bool>(out);
}

}  // namespace dcpp::bench
