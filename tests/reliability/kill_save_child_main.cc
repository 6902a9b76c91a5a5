// The child process of kill_test.cc: saves a state dict of about 200 MB on
// two thread ranks to <path>, logging every step of the save to <log>
// (unbuffered, so that what a SIGKILL interrupted can be read afterwards).
// usage: reliability_kill_child <path> <generation> <log>
// The content is kill_test_value(generation, key, element) (kill_child.h).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "dcpp/checkpoint.h"
#include "dcpp/comm.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "reliability/kill_child.h"

namespace {

using namespace dcpp;

int g_log = -1;

void log_line(const std::string& line) {
  std::string l = line + "\n";
  if (g_log >= 0) (void)!::write(g_log, l.data(), l.size());
}

// The last component of a path, "staging/<name>" inside the staging directory.
std::string base(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
  const auto parent_slash = parent.find_last_of('/');
  const std::string parent_name = parent_slash == std::string::npos ? parent : parent.substr(parent_slash + 1);
  return parent_name.find("dcpp-staging") != std::string::npos ? "staging/" + name : name;
}

// Logs each mutating call before it happens, then forwards it.
class LoggingFileSystem final : public ForwardingFileSystem {
 public:
  std::unique_ptr<WritableFile> open_write(const std::string& p, const OpenWriteOptions& o = {}) override {
    log_line("open " + base(p));
    return std::make_unique<LoggingFile>(ForwardingFileSystem::open_write(p, o));
  }
  void rename(const std::string& a, const std::string& b) override {
    log_line("rename " + base(a) + " -> " + base(b));
    ForwardingFileSystem::rename(a, b);
  }
  bool rename_exchange(const std::string& a, const std::string& b) override {
    log_line("exchange " + base(a) + " <-> " + base(b));
    return ForwardingFileSystem::rename_exchange(a, b);
  }
  bool mkdir(const std::string& p) override {
    log_line("mkdir " + base(p));
    return ForwardingFileSystem::mkdir(p);
  }
  bool remove(const std::string& p) override {
    log_line("remove " + base(p));
    return ForwardingFileSystem::remove(p);
  }
  void remove_all(const std::string& p) override {
    log_line("remove_all " + base(p));
    ForwardingFileSystem::remove_all(p);
  }
  void fsync_dir(const std::string& p) override {
    log_line("fsync_dir " + base(p));
    ForwardingFileSystem::fsync_dir(p);
  }

 private:
  class LoggingFile final : public ForwardingWritableFile {
   public:
    using ForwardingWritableFile::ForwardingWritableFile;
    size_t write(const void* d, size_t n, uint64_t o) override {
      log_line("pwrite " + base(path()) + " " + std::to_string(n) + "@" + std::to_string(o));
      return ForwardingWritableFile::write(d, n, o);
    }
    void sync() override {
      log_line("sync " + base(path()));
      ForwardingWritableFile::sync();
    }
    void truncate(uint64_t n) override {
      log_line("truncate " + base(path()));
      ForwardingWritableFile::truncate(n);
    }
  };
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <path> <generation> <log>\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const uint32_t generation = static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10));
  g_log = ::open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  try {
    auto fs = std::make_shared<LoggingFileSystem>();
    log_line("filling");
    run_ranks(dcpp::testing::kKillWorld, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
      StateDict sd;
      for (int k = 0; k < dcpp::testing::kKillTensors; ++k) {
        const Shape global = {dcpp::testing::kKillRows, dcpp::testing::kKillCols};
        LocalChunk lc = compute_local_shape_and_global_offset(global, mesh.shape(), mesh.coordinate(), {Shard{0}});
        Tensor local = Tensor::empty(lc.local_shape);
        float* p = local.data<float>();
        const uint64_t first = static_cast<uint64_t>(lc.global_offset[0]) * dcpp::testing::kKillCols;
        for (int64_t i = 0; i < local.numel(); ++i) {
          p[i] = dcpp::testing::kill_test_value(generation, k, first + static_cast<uint64_t>(i));
        }
        sd.set(dcpp::testing::kill_test_key(k), DTensor(local, mesh, {Shard{0}}, global));
      }
      sd.set("generation", static_cast<int64_t>(generation));
      comm->barrier();
      if (comm->rank() == 0) log_line("saving");
      FileSystemWriterOptions options;
      options.filesystem = fs;
      const char* compress = std::getenv("DCPP_KILL_COMPRESS");
      options.compress = compress && std::string(compress) == "1";
      FileSystemWriter writer(path, options);
      save(sd, writer, SaveOptions{.comm = comm});
    });
    log_line("done");
    return 0;
  } catch (const std::exception& e) {
    log_line(std::string("error ") + e.what());
    std::fprintf(stderr, "reliability_kill_child: %s\n", e.what());
    return 1;
  }
}
