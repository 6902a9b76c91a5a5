// `dcpp demo`: the job a user runs dcpp for, on a model of real size. A
// GPT-style model (GPTModel: residual MLP blocks, fp32 master weights, AdamW)
// is trained tensor-parallel over 4 thread ranks; the checkpoint (weights,
// optimizer state, a bf16 serving copy of the weights, training counters) is
// saved and timed against the disk's raw direct-I/O write, measured in the
// same run with the benchmark's code; a new mesh of 2 ranks loads it
// (resharding 4 → 2) and training continues. The reference for "as if never
// interrupted" takes the same TP schedule without the disk: the ranks'
// shards are put together in memory and handed to a TP=2 model directly. The losses and the
// final state must match bit for bit, or the demo fails. It ends with
// `dcpp inspect` and `dcpp verify` on the checkpoint (their own code) and
// removes it.
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint_bench.h"
#include "cli/cli.h"
#include "dcpp/checkpoint.h"
#include "dcpp/io.h"
#include "dcpp/optim.h"
#include "dcpp/testing/models.h"
#include "dcpp/tp.h"

namespace dcpp::cli {
namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kTrainRanks = 4;   // TP degree before the save
constexpr int kResumeRanks = 2;  // TP degree after it
constexpr uint64_t kSeed = 1234;
const AdamWOptions kAdamW{.lr = 1e-4, .weight_decay = 0.01};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Bytes this process has handed to write(2) and friends so far (/proc/self/io
// "wchar"): counts direct and buffered writes alike, for the save's progress line.
uint64_t process_write_bytes() {
  std::ifstream in("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "wchar:") return value;
  }
  return 0;
}

// The training data: one fixed batch (tokens × hidden) and its target, the
// same on every rank (the input of a Colwise layer is replicated).
struct Batch {
  Tensor x;
  Tensor target;
};
Batch make_batch(int64_t tokens, int64_t hidden) {
  Generator gen(kSeed);
  Batch b;
  b.x = Tensor::normal({tokens, hidden}, 0, 1, gen);
  b.target = Tensor::normal({tokens, hidden}, 0, 1, gen);
  return b;
}

// One step of loss = mean((model(x) - target)²); returns the loss (the
// model's output is replicated, so every rank computes the same one).
double train_step(GPTModel& model, AdamW& optimizer, const Batch& batch) {
  // Zeroed in place, not dropped: backward then adds into the same buffers
  // instead of allocating (and faulting in) a fresh gigabyte every step.
  optimizer.zero_grad(/*set_to_none=*/false);
  Tensor y = model.forward(batch.x).contiguous();
  const int64_t n = y.numel();
  Tensor grad = Tensor::empty(y.shape());
  const float* py = y.data<float>();
  const float* pt = batch.target.data<float>();
  float* pg = grad.data<float>();
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(py[i]) - pt[i];
    loss += d * d;
    pg[i] = static_cast<float>(2 * d / static_cast<double>(n));
  }
  model.backward(grad);
  optimizer.step();
  return loss / static_cast<double>(n);
}

// A TP model of `config` on `mesh`: built on meta, parallelized, then each
// rank initialises only its own shards.
void build_model(GPTModel& model, const DeviceMesh& mesh) {
  parallelize_module(model, mesh, gpt_tp_plan(model.config()));
  model.init_weights(kSeed);
}

// The bf16 serving copy: one bf16 DTensor per Linear weight, laid out like it.
StateDict serving_copy(GPTModel& model, bool allocate_only) {
  StateDict sd;
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    const DTensor& w = p->dtensor();
    Tensor local = allocate_only ? Tensor::empty(w.to_local().shape(), DType::kBFloat16) : w.to_local().to(DType::kBFloat16);
    sd.set(name, DTensor(local, w.device_mesh(), w.placements(), w.shape()));
  }
  return sd;
}

// The whole training state as one dict: what is saved and what is loaded.
StateDict training_state(GPTModel& model, AdamW& optimizer, StateDict serving, int64_t step) {
  auto [model_sd, optim_sd] = get_state_dict(model, optimizer);
  return StateDict{{"model", model_sd},
                   {"optim", optim_sd},
                   {"serving_bf16", std::move(serving)},
                   {"train", StateDict{{"step", step}, {"data_seed", static_cast<int64_t>(kSeed)}}}};
}

// Puts the ranks' shards of each DTensor together into one whole tensor (each
// shard copied into its box, at DTensor::global_offset), consuming `shards`:
// every shard is dropped as soon as it is copied, so the whole copy grows as
// the sharded one shrinks. Plain tensors and values are taken from rank 0.
// The ranks are threads of this process: their shards are plain memory here,
// and no collective or checkpoint code is involved.
StateDict assemble_whole(std::vector<StateDict>& shards) {
  StateDict out;
  for (auto& [key, v0] : shards[0]) {
    if (v0.is_dtensor()) {
      const DTensor& d0 = v0.as<DTensor>();
      Tensor whole = Tensor::empty(d0.shape(), d0.dtype());
      for (StateDict& rank : shards) {
        StateValue& v = rank.at(key);
        const DTensor& d = v.as<DTensor>();
        const Shape offset = d.global_offset();
        Tensor box = whole;
        for (int64_t dim = 0; dim < whole.dim(); ++dim) box = box.narrow(dim, offset[dim], d.to_local().size(dim));
        box.copy_from(d.to_local());
        v = StateValue();
      }
      out.set(key, whole);
    } else if (v0.is_dict()) {
      std::vector<StateDict> children;
      for (StateDict& rank : shards) children.push_back(rank.at(key).as<StateDict>());
      out.set(key, assemble_whole(children));
    } else if (v0.is_tensor()) {
      out.set(key, v0.as<Tensor>().clone());
    } else if (v0.is_list()) {
      out.set(key, v0.as<StateList>().clone());
    } else {
      out.set(key, v0);
    }
  }
  return out;
}

// XXH3 of this rank's parameters and optimizer state, in a fixed order.
uint64_t state_digest(GPTModel& model, AdamW& optimizer) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  auto add = [&](const Tensor& t) {
    Tensor c = t.contiguous();
    if (c.nbytes()) XXH3_64bits_update(st, c.data_ptr(), c.nbytes());
  };
  for (const auto& [name, p] : model.named_parameters()) {
    add(p->local());
    StateDict s = optimizer.param_state(name);
    for (const char* k : {"step", "exp_avg", "exp_avg_sq"}) {
      const StateValue& v = s.at(k);
      add(v.is_dtensor() ? v.as<DTensor>().to_local() : v.as<Tensor>());
    }
  }
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

double gib_per_s(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / (1024.0 * 1024 * 1024) / seconds : 0;
}

uint64_t tensor_bytes(const StateDict& sd) {
  uint64_t n = 0;
  for (const auto& [k, v] : sd) {
    if (v.is_dtensor()) n += static_cast<uint64_t>(shape_numel(v.as<DTensor>().shape())) * dtype_size(v.as<DTensor>().dtype());
    else if (v.is_tensor()) n += v.as<Tensor>().nbytes();
    else if (v.is_dict()) n += tensor_bytes(v.as<StateDict>());
  }
  return n;
}

// What a continued run reports: rank 0's losses, and every rank's state digest.
struct RunResult {
  std::vector<double> losses;
  std::vector<uint64_t> digests;  // per rank
};

}  // namespace

int run_demo(const DemoArgs& args) {
  const auto t_start = Clock::now();
  const GPTConfig config{.layers = args.layers, .hidden = args.hidden};
  const int steps = args.steps;
  const Batch batch = make_batch(args.tokens, args.hidden);

  std::string root = (stdfs::path(args.dir.empty() ? stdfs::temp_directory_path().string() : args.dir) /
                      "dcpp-demo-XXXXXX").string();
  if (::mkdtemp(root.data()) == nullptr) {
    std::fprintf(stderr, "dcpp demo: cannot create a directory under %s: %s\n",
                 stdfs::path(root).parent_path().c_str(), std::strerror(errno));
    return kExitIo;
  }
  const std::string ckpt = root + "/ckpt";
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      stdfs::remove_all(dir, ec);
    }
  } cleanup{root};

  {
    GPTModel shape(config, ModuleOptions{Device::kMeta});
    const int64_t params = shape.num_parameters();
    const int64_t weights = params - config.layers * (5 * config.hidden);
    std::printf("dcpp demo: train a GPT-style model tensor-parallel, checkpoint it, resume at another TP degree\n\n");
    std::printf("model   GPTModel, %d layers of x + down_proj(relu(up_proj(x))), hidden %lld, ffn %lld\n", config.layers,
                static_cast<long long>(config.hidden), static_cast<long long>(4 * config.hidden));
    std::printf("        %lld parameters: %s fp32 master weights; a bf16 serving copy of the weights (%s) is saved too\n",
                static_cast<long long>(params), human_bytes(static_cast<uint64_t>(params) * 4).c_str(),
                human_bytes(static_cast<uint64_t>(weights) * 2).c_str());
    std::printf("optim   AdamW (lr %g, weight decay %g): exp_avg and exp_avg_sq in fp32 (%s), step\n", kAdamW.lr,
                kAdamW.weight_decay, human_bytes(static_cast<uint64_t>(params) * 8).c_str());
    std::printf("layout  TP=%d over %d thread ranks: up_proj ColwiseParallel (Shard(0)), down_proj RowwiseParallel "
                "(Shard(1))\n",
                kTrainRanks, kTrainRanks);
    std::printf("data    one fixed batch of %d tokens (seed %llu); loss = mean squared error to a fixed target\n\n",
                args.tokens, static_cast<unsigned long long>(kSeed));
  }

  std::mutex mu;
  std::vector<StateDict> shards(kTrainRanks);  // each TP=4 rank's state at the save, for the reference run
  StateDict snapshot;                          // the same, whole
  RunResult reference, resumed;
  reference.digests.resize(kResumeRanks);
  resumed.digests.resize(kResumeRanks);
  uint64_t ckpt_bytes = 0;
  bool ok = true;

  try {
    // ---- 1. train on TP=4, save ----
    run_ranks(kTrainRanks, [&](CommPtr comm) {
      const bool root_rank = comm->rank() == 0;
      auto t0 = Clock::now();
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {kTrainRanks});
      auto model = std::make_unique<GPTModel>(config, ModuleOptions{Device::kMeta});
      build_model(*model, mesh);
      auto optimizer = std::make_unique<AdamW>(*model, kAdamW);
      comm->barrier();
      if (root_rank) {
        std::printf("[1/5] build on meta, parallelize TP=%d, each rank initialises its shards: %.2f s\n", kTrainRanks,
                    seconds_since(t0));
        std::printf("[2/5] train %d steps on TP=%d\n", steps, kTrainRanks);
      }
      for (int s = 0; s < steps; ++s) {
        t0 = Clock::now();
        const double loss = train_step(*model, *optimizer, batch);
        if (root_rank) {
          std::printf("      step %2d  loss %.10f  (%.2f s)\n", s + 1, loss, seconds_since(t0));
          std::fflush(stdout);
        }
      }
      optimizer->zero_grad();  // gradients are not part of a checkpoint

      StateDict state = training_state(*model, *optimizer, serving_copy(*model, false), steps);
      const uint64_t bytes = tensor_bytes(state);
      // The disk's own limit, as `dcpp bench` measures it: every rank writes
      // its share of the checkpoint's bytes with direct I/O.
      const std::string raw = root + "/raw-" + std::to_string(comm->rank()) + ".bin";
      const uint64_t raw_per_rank = align_up((bytes + kTrainRanks - 1) / kTrainRanks, 16 << 20);
      std::atomic<bool> direct{true};
      const double raw_s = bench::timed(*comm, [&] {
        if (!bench::raw_io(raw, raw_per_rank, 2, /*write=*/true, /*want_direct=*/true)) direct = false;
      });
      ::unlink(raw.c_str());
      const uint64_t raw_bytes = raw_per_rank * kTrainRanks;
      if (root_rank) {
        ckpt_bytes = bytes;
        std::printf("[3/5] save to %s: %s (fp32 weights, bf16 serving copy, AdamW state)\n", ckpt.c_str(),
                    human_bytes(bytes).c_str());
        std::printf("      the disk: raw %s write of %s by the %d ranks: %.2f GiB/s\n",
                    direct ? "direct-I/O" : "buffered (O_DIRECT refused)", human_bytes(raw_bytes).c_str(), kTrainRanks,
                    gib_per_s(raw_bytes, raw_s));
        std::fflush(stdout);
      }
      std::atomic<bool> saving{true};
      std::thread progress_thread;
      if (root_rank && stdout_is_terminal()) {
        progress_thread = std::thread([&] {
          Progress progress("      saving", bytes, true);
          uint64_t last = process_write_bytes();
          while (saving) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            const uint64_t now = process_write_bytes();
            progress.add(now - last);
            last = now;
          }
        });
      }
      double save_s = 0;
      try {
        save_s = bench::timed(*comm, [&] { save(state, ckpt, SaveOptions{.comm = comm}); });
      } catch (...) {
        saving = false;
        if (progress_thread.joinable()) progress_thread.join();
        throw;
      }
      saving = false;
      if (progress_thread.joinable()) progress_thread.join();
      if (root_rank) {
        std::printf("      saved in %.2f s: %.2f GiB/s, %.2fx the raw disk write\n", save_s, gib_per_s(bytes, save_s),
                    gib_per_s(bytes, save_s) / gib_per_s(raw_bytes, raw_s));
        std::fflush(stdout);
      }

      // For the reference: this rank's shards, held in memory. The model and
      // the optimizer go, so that these dicts alone hold them.
      state.erase("serving_bf16");
      state.erase("train");
      optimizer.reset();
      model.reset();
      shards[static_cast<size_t>(comm->rank())] = std::move(state);
    });

    // ---- 2. the reference: TP=2 from the in-memory state, no disk ----
    std::printf("[4/5] reference: the TP=%d state put together in memory and handed to a TP=%d model (no disk), %d steps\n",
                kTrainRanks, kResumeRanks, steps);
    std::fflush(stdout);
    auto t_reference = Clock::now();
    snapshot = assemble_whole(shards);
    shards.clear();
    run_ranks(kResumeRanks, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {kResumeRanks});
      GPTModel model(config, ModuleOptions{Device::kMeta});
      build_model(model, mesh);
      AdamW optimizer(model, kAdamW);
      // Each rank copies its piece of the whole tensors; each part of the
      // whole copy is freed once both ranks have theirs (the last handle goes).
      StateDict model_whole = snapshot.at("model").dict();
      StateDict optim_whole = snapshot.at("optim").dict();
      comm->barrier();
      if (comm->rank() == 0) snapshot = StateDict();
      model.load_state_dict(model_whole);
      model_whole = StateDict();
      comm->barrier();
      optimizer.init_state();
      optimizer.load_state_dict(optim_whole);
      optim_whole = StateDict();
      for (int s = 0; s < steps; ++s) {
        const double loss = train_step(model, optimizer, batch);
        if (comm->rank() == 0) reference.losses.push_back(loss);
      }
      const uint64_t d = state_digest(model, optimizer);
      std::lock_guard lock(mu);
      reference.digests[static_cast<size_t>(comm->rank())] = d;
    });
    std::printf("      done: %.2f s\n", seconds_since(t_reference));
    auto t_resume = Clock::now();

    // ---- 3. resume from the checkpoint on a new mesh of 2 ranks ----
    run_ranks(kResumeRanks, [&](CommPtr comm) {
      const bool root_rank = comm->rank() == 0;
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {kResumeRanks});
      GPTModel model(config, ModuleOptions{Device::kMeta});
      build_model(model, mesh);  // its values are about to be replaced
      AdamW optimizer(model, kAdamW);
      StateDict state = training_state(model, optimizer, serving_copy(model, true), 0);
      if (root_rank) {
        std::printf("[5/5] resume: a new mesh of %d thread ranks, the model parallelized TP=%d, load (resharding %d -> %d)\n",
                    kResumeRanks, kResumeRanks, kTrainRanks, kResumeRanks);
        std::fflush(stdout);
      }
      const double load_s = bench::timed(*comm, [&] { load(state, ckpt, LoadOptions{.comm = comm}); });
      const int64_t step = state.at("train").dict().at("step").as<int64_t>();
      // The serving copy must be the bf16 rounding of the weights it was taken from.
      int64_t serving_bad = 0;  // shards whose copy differs, over all ranks
      const StateDict& weights = state.at("model").dict();
      for (const auto& [name, v] : state.at("serving_bf16").dict()) {
        const Tensor master = weights.at(name).as<DTensor>().to_local().to(DType::kBFloat16);
        if (!equal(v.as<DTensor>().to_local(), master)) ++serving_bad;
      }
      comm->all_reduce(&serving_bad, 1, DType::kInt64, ReduceOp::kSum);
      const bool serving_ok = serving_bad == 0;
      if (root_rank) {
        std::printf("      loaded %s in %.2f s (%.2f GiB/s); checkpoint at step %lld; bf16 serving copy %s\n",
                    human_bytes(ckpt_bytes).c_str(), load_s, gib_per_s(ckpt_bytes, load_s), static_cast<long long>(step),
                    serving_ok ? "= bf16(weights) on every shard" : "DIFFERS from bf16(weights)");
        std::fflush(stdout);
      }
      if (!serving_ok) {
        std::lock_guard lock(mu);
        ok = false;
      }
      for (int s = 0; s < steps; ++s) {
        const double loss = train_step(model, optimizer, batch);
        if (root_rank) resumed.losses.push_back(loss);
      }
      const uint64_t d = state_digest(model, optimizer);
      std::lock_guard lock(mu);
      resumed.digests[static_cast<size_t>(comm->rank())] = d;
    });
    std::printf("      trained %d steps on TP=%d: %.2f s in all\n", steps, kResumeRanks, seconds_since(t_resume));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dcpp demo: %s\n", e.what());
    return kExitProblems;
  }

  // ---- side by side ----
  std::printf("\n      continued training on TP=%d: resumed from the checkpoint vs. never interrupted\n", kResumeRanks);
  std::printf("      (reference: the same TP=%d steps from the in-memory state, redistributed without the disk)\n",
              kResumeRanks);
  std::printf("      %4s  %-20s  %-20s\n", "step", "resumed (disk)", "uninterrupted");
  for (int s = 0; s < steps; ++s) {
    const double a = resumed.losses[static_cast<size_t>(s)], b = reference.losses[static_cast<size_t>(s)];
    const bool same = std::memcmp(&a, &b, sizeof a) == 0;
    ok = ok && same;
    std::printf("      %4d  %-20.12f  %-20.12f  %s\n", steps + s + 1, a, b, same ? "identical" : "DIFFERENT");
  }
  const bool digests_same = resumed.digests == reference.digests;
  ok = ok && digests_same;
  std::printf("      final weights and AdamW state (XXH3 of each rank's shards): %s\n\n",
              digests_same ? "identical on every rank" : "DIFFERENT");
  std::fflush(stdout);

  // ---- inspect and verify, as the commands print them ----
  std::printf("$ dcpp inspect %s\n", ckpt.c_str());
  std::fflush(stdout);
  const int inspect_code = run_inspect(InspectArgs{ckpt});
  std::printf("\n$ dcpp verify %s\n", ckpt.c_str());
  std::fflush(stdout);
  const int verify_code = run_verify(VerifyArgs{ckpt});
  ok = ok && inspect_code == kExitOk && verify_code == kExitOk;

  std::error_code ec;
  stdfs::remove_all(root, ec);
  std::printf("\nremoved %s%s\n", root.c_str(), ec ? (": " + ec.message()).c_str() : "");
  std::printf("%s (%.1f s)\n",
              ok ? "demo passed: the resumed run is bit-for-bit the uninterrupted one"
                 : "DEMO FAILED: the resumed run differs from the uninterrupted one, or the checkpoint has problems",
              seconds_since(t_start));
  return ok ? kExitOk : kExitProblems;
}

}  // namespace dcpp::cli
