// Faults between dcpp and the S3 server: a proxy on the loopback
// (fault_proxy.py) answers 500 and 503 SlowDown, resets connections in the
// middle of a part upload and of a response, loses the answer to a request
// that took effect, and stalls. Every case saves checkpoint B over a
// complete checkpoint A through the proxy (two thread ranks, two-part
// uploads each) and loads through it: the save either succeeds (the
// retries absorbed the fault) and B loads byte for byte, or it fails with
// an error naming the object and the HTTP status, and A loads byte for
// byte; never a mixture, and no hang (every request has a stall timeout).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "s3/s3_client.h"
#include "s3/s3_env.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

// The proxy process, for the lifetime of one case.
class FaultProxy {
 public:
  explicit FaultProxy(const std::vector<std::string>& rules) {
    state_ = dir_.path() + "/proxy.state";
    std::vector<std::string> args = {"python3", DCPP_SOURCE_DIR "/tests/s3/fault_proxy.py", s3_test_server().endpoint,
                                     state_};
    args.insert(args.end(), rules.begin(), rules.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 300; ++i) {  // 30 s at most
      std::ifstream in(state_);
      std::string word;
      int port = 0;
      while (in >> word) {
        if (word == "port") in >> port;
      }
      if (port) {
        endpoint_ = "http://127.0.0.1:" + std::to_string(port);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("the fault proxy did not start");
  }
  ~FaultProxy() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& endpoint() const { return endpoint_; }
  // How many faults the proxy injected so far.
  int injected() const {
    std::ifstream in(state_ + ".log");
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

 private:
  TempDir dir_;
  std::string state_;
  std::string endpoint_;
  pid_t pid_ = -1;
};

std::shared_ptr<S3FileSystem> through(const FaultProxy& proxy) {
  S3Options o = s3_test_options(proxy.endpoint());
  o.max_retries = 3;
  o.stall_timeout_ms = 1000;  // libcurl's low-speed limit: 1 s without a byte
  o.request_timeout_ms = 20000;
  return std::make_shared<S3FileSystem>(o);
}

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::kFloat32);
  std::mt19937_64 rng(seed);
  auto* p = static_cast<uint32_t*>(t.data_ptr());
  for (int64_t i = 0; i < shape_numel(shape); ++i) p[i] = static_cast<uint32_t>(rng() >> 40);  // finite floats
  return t;
}

// 2 ranks × 6 MiB (two 5 MiB-part uploads each) of "w", and a value.
constexpr int kRanks = 2;
const Shape kShape{2 * 6 * 256, 1024};

void save_on_ranks(const std::string& path, const Tensor& full, int64_t step, const FileSystemPtr& fs) {
  run_ranks(kRanks, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {kRanks});
    FileSystemWriterOptions o;
    o.filesystem = fs;
    FileSystemWriter writer(path, o);
    save(StateDict{{"w", distribute_tensor(full, mesh, {Shard{0}})}, {"step", step}}, writer, SaveOptions{.comm = comm});
  });
}

// What loads from `path`, as one full tensor and the step.
std::pair<Tensor, int64_t> load_on_ranks(const std::string& path, const FileSystemPtr& fs) {
  Tensor out;
  int64_t step = -1;
  run_ranks(kRanks, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {kRanks});
    FileSystemReaderOptions o;
    o.filesystem = fs;
    o.max_read_bytes = 2 << 20;  // several GETs per rank
    FileSystemReader reader(path, o);
    StateDict sd{{"w", distribute_tensor(Tensor::zeros(kShape, DType::kFloat32), mesh, {Shard{1}})}, {"step", int64_t{-1}}};
    load(sd, reader, LoadOptions{.comm = comm});
    Tensor full = sd.at("w").as<DTensor>().full_tensor();
    if (comm->rank() == 0) {
      out = full;
      step = sd.at("step").as<int64_t>();
    }
  });
  return {out, step};
}

// Multipart uploads still open under `path` (a failed save aborts its own).
size_t open_uploads(const std::string& path) {
  const s3::ObjectName obj = s3::parse_s3_path(path);
  s3::Client client(s3_test_options());
  s3::Request r("GET", s3::ObjectName{obj.bucket, ""});
  r.query = {{"uploads", ""}, {"prefix", obj.key + "/"}};
  return s3::xml_values(client.send(r).body, "UploadId").size();
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

struct FaultCase {
  std::string name;
  std::vector<std::string> save_rules;  // during the save of B
  std::vector<std::string> load_rules;  // during the loads
  bool save_may_fail = false;           // the fault outlasts the retries
  std::string error_names;              // what a failed save's error names (object and status)
};

void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.name; }

class S3Faults : public ::testing::TestWithParam<FaultCase> {};

TEST_P(S3Faults, OldOrNewCheckpointNeverAMixture) {
  DCPP_REQUIRE_S3();
  const FaultCase& c = GetParam();
  const uint64_t seed = test_seed("S3Faults." + c.name);
  static std::random_device rd;
  const std::string path = std::string("s3://") + kS3TestBucket + "/faults-" + c.name + "-" + std::to_string(rd());
  const Tensor a = random_tensor(kShape, seed), b = random_tensor(kShape, seed + 1);
  save_on_ranks(path, a, 1, s3_test_file_system());

  bool saved = false;
  std::string error;
  const auto t0 = std::chrono::steady_clock::now();
  {
    FaultProxy proxy(c.save_rules);
    try {
      save_on_ranks(path, b, 2, through(proxy));
      saved = true;
    } catch (const Error& e) {
      error = e.message();
    }
    if (!c.save_rules.empty()) {
      EXPECT_GT(proxy.injected(), 0) << "the save met no fault";
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fault] %s: save %s in %.1f s%s%s\n", c.name.c_str(), saved ? "succeeded" : "failed", seconds,
              error.empty() ? "" : ": ", error.substr(0, 300).c_str());
  if (!c.save_may_fail) {
    EXPECT_TRUE(saved) << "the retries should absorb " << c.name << ": " << error;
  }
  if (!saved) {
    for (const std::string& word : {c.error_names, std::string("HTTP status")}) {
      EXPECT_NE(error.find(word), std::string::npos) << "the error names " << word << ": " << error;
    }
  }
  EXPECT_EQ(open_uploads(path), 0u) << "multipart uploads left open";
  const Tensor& expected = saved ? b : a;
  const int64_t expected_step = saved ? 2 : 1;
  auto [direct, step] = load_on_ranks(path, s3_test_file_system());
  EXPECT_TRUE(same_bytes(direct, expected)) << "the checkpoint is " << (saved ? "B" : "A") << ", byte for byte";
  EXPECT_EQ(step, expected_step);
  if (!c.load_rules.empty()) {
    FaultProxy proxy(c.load_rules);
    auto [faulty, faulty_step] = load_on_ranks(path, through(proxy));
    EXPECT_GT(proxy.injected(), 0) << "the load met no fault";
    EXPECT_TRUE(same_bytes(faulty, expected)) << "loaded through " << c.name;
    EXPECT_EQ(faulty_step, expected_step);
  }
}

const char* kPart = "PUT:partNumber=";
std::string rule(const std::string& prefix, const std::string& action, int count) {
  return prefix + ":" + action + ":" + std::to_string(count);
}

INSTANTIATE_TEST_SUITE_P(
    , S3Faults,
    ::testing::Values(
        FaultCase{"part_500", {rule(kPart, "500", 2)}, {}, false, ""},
        FaultCase{"part_503_slowdown", {rule(kPart, "503", 3)}, {}, false, ""},
        FaultCase{"part_reset_mid_request", {rule(kPart, "reset_request", 2)}, {}, false, ""},
        FaultCase{"complete_answer_lost", {rule("POST:uploadId=", "lost_response", 1)}, {}, false, ""},
        FaultCase{"metadata_answer_lost", {rule("PUT:dcpp.metadata", "lost_response", 1)}, {}, false, ""},
        FaultCase{"get_reset_mid_response", {}, {rule("GET:data-", "reset_response", 3)}, false, ""},
        FaultCase{"get_503_and_stall", {}, {rule("GET:data-", "503", 2), rule("GET:data-", "stall", 1)}, false, ""},
        FaultCase{"part_500_always", {rule(kPart, "500", 0)}, {}, true, "s3://dcpp-test/faults-part_500_always"},
        FaultCase{"metadata_503_always", {rule("PUT:dcpp.metadata", "503", 0)}, {}, true, "dcpp.metadata"}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return info.param.name; });

}  // namespace
}  // namespace dcpp::testing
