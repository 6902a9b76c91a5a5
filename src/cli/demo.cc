// `dcpp demo`: runs the seed scenario. The scenario itself lives in
// examples/tp_checkpoint.cc (a program of its own, built next to dcpp as
// example_tp_checkpoint); the command only finds it and hands over the
// process, so there is one copy of the demo to keep right.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace dcpp::cli {
namespace {

constexpr const char* kDemoProgram = "example_tp_checkpoint";

// The directory of the running dcpp binary.
std::string own_directory(const char* argv0) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string exe = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string(argv0 ? argv0 : "");
  auto slash = exe.find_last_of('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

}  // namespace

int run_demo(const DemoArgs& args, const char* argv0) {
  const std::string dir = own_directory(argv0);
  const std::string program = dir + "/" + kDemoProgram;
  if (::access(program.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "dcpp demo: the demo program is not built: no executable '%s' next to dcpp.\n"
                 "Build it with: cmake --build %s --target %s\n",
                 program.c_str(), dir.c_str(), kDemoProgram);
    return kExitNotCheckpoint;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& a : args.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  ::execv(program.c_str(), argv.data());
  std::fprintf(stderr, "dcpp demo: cannot run '%s': %s\n", program.c_str(), std::strerror(errno));
  return kExitIo;
}

}  // namespace dcpp::cli
