// The dcpp command: inspect, verify, list and convert checkpoints, run the demo and the benchmark.
// docs/cli.md describes every subcommand, the JSON fields and the exit codes.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "checkpoint_bench.h"
#include "s3_bench.h"
#include "cli/cli.h"
#include "dcpp/s3_file_system.h"

#ifndef DCPP_VERSION
#define DCPP_VERSION "unknown"
#endif

namespace {

constexpr const char* kExitCodes =
    "Exit codes: 0 ok; 1 problems found (checkpoint corrupt or incomplete); 2 usage error;\n"
    "3 not a checkpoint or not found; 4 I/O error. See docs/cli.md.";

}  // namespace

int main(int argc, char** argv) {
  using namespace dcpp::cli;
  CLI::App app{"dcpp: inspect, verify, list and convert checkpoints (dcpp, safetensors, PyTorch DCP)", "dcpp"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", std::string("dcpp ") + DCPP_VERSION);
  app.require_subcommand(1);

  InspectArgs inspect_args;
  auto* inspect = app.add_subcommand(
      "inspect", "Show the keys of a checkpoint (dtype, global shape, chunks, bytes, files) and a summary");
  inspect->add_option("checkpoint", inspect_args.path, "Checkpoint: dcpp, safetensors (directory or file) or PyTorch DCP")->required();
  inspect->add_flag("--json", inspect_args.json, "Print JSON for scripts (fields in docs/cli.md)");
  inspect->add_flag("--full", inspect_args.full, "With --json: add the complete metadata (every chunk) under \"metadata\"");
  inspect->footer(kExitCodes);

  VerifyArgs verify_args;
  auto* verify = app.add_subcommand(
      "verify", "Read every byte once: check every block checksum (dcpp) and structural invariant, report each problem");
  verify->add_option("checkpoint", verify_args.path, "Checkpoint: dcpp, safetensors (directory or file) or PyTorch DCP")->required();
  verify->add_flag("--json", verify_args.json, "Print the result as JSON (fields in docs/cli.md)");
  verify->add_flag("-q,--quiet", verify_args.quiet, "No progress bar, even on a terminal");
  verify->footer(kExitCodes);

  LsArgs ls_args;
  auto* ls = app.add_subcommand("ls", "List the steps under a CheckpointManager root: state, size, modification time");
  ls->add_option("root", ls_args.root, "Checkpoint root directory (holding step-NNNNNN directories)")->required();
  ls->add_flag("--json", ls_args.json, "Print JSON for scripts (fields in docs/cli.md)");
  ls->footer(kExitCodes);

  ConvertArgs convert_args;
  auto* convert = app.add_subcommand(
      "convert", "Convert any supported checkpoint (dcpp, safetensors, PyTorch DCP) to safetensors, PyTorch DCP or dcpp");
  convert->add_option("checkpoint", convert_args.src, "Source checkpoint (any supported format)")->required();
  convert->add_option("destination", convert_args.dst, "Directory to write (an existing checkpoint there is replaced)")
      ->required();
  convert->add_option("--to", convert_args.to, "Target format")
      ->required()
      ->check(CLI::IsMember({"safetensors", "torch-dcp", "dcpp"}));
  convert->add_option("--max-shard-size", convert_args.max_shard_size,
                      "safetensors: start a new file after this many bytes (5GB, 500MiB, 1024); default one file");
  convert->add_flag("--torch-compatible", convert_args.torch_compatible,
                    "safetensors: refuse dtypes PyTorch's HF reader cannot load (bool, fp8)");
  convert->add_flag("--compress", convert_args.compress,
                    "dcpp: store each checksum block byte-grouped and zstd-coded where that is smaller "
                    "(format version 2)");
  convert->footer(kExitCodes);

  DemoArgs demo_args;
  auto* demo = app.add_subcommand(
      "demo", "Train a GPT-style model on TP=4 thread ranks, save, resume on TP=2, compare with an uninterrupted run");
  demo->add_option("--layers", demo_args.layers, "GPT blocks (the default model has 1 GiB of fp32 parameters)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  demo->add_option("--hidden", demo_args.hidden, "Hidden size; each block's MLP is 4 x hidden wide")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  demo->add_option("--steps", demo_args.steps, "Training steps before the save, and again after the resume")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  demo->add_option("--tokens", demo_args.tokens, "Rows of the training batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  demo->add_option("--dir", demo_args.dir, "Where the temporary checkpoint goes (default: the system's temp directory)");
  demo->footer("Exit code: 0 when the resumed run is bit for bit the uninterrupted one and the checkpoint verifies;\n"
               "1 otherwise; 2 usage error; 4 the temporary directory could not be created.");

  dcpp::bench::BenchOptions bench_args;
  auto* bench = app.add_subcommand(
      "bench", "Benchmark save and load (same sharding and resharded) against the disk's raw direct-I/O bandwidth");
  bench->add_option("--ranks", bench_args.ranks, "Thread ranks (under mpirun: the MPI world instead)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  bench->add_option("--layers", bench_args.layers, "Transformer layers of the synthetic model")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  bench->add_option("--hidden", bench_args.hidden, "Hidden size (the default model is about 3 GiB)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{8}, int64_t{1} << 20));
  bench->add_flag("--optimizer", bench_args.optimizer, "Add AdamW state (exp_avg, exp_avg_sq in fp32) per weight");
  bench->add_option("--dir", bench_args.dir,
                    "Directory for the files (default ./dcpp-bench-data); removed afterwards. s3://bucket/prefix: "
                    "the S3 benchmark against dcpp's raw client and boto3 (endpoint and keys from AWS_*)");
  bench->add_option("--runs", bench_args.runs, "Runs per figure; each figure is their median")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  bench->add_option("--write-threads", bench_args.write_threads, "Writer threads per rank (dcpp and the raw baseline)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  bench->add_option("--read-threads", bench_args.read_threads, "Reader threads per rank (dcpp and the raw baseline)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  bool bench_buffered = false, bench_no_reshard = false, bench_no_async = false;
  bench->add_flag("--no-direct", bench_buffered, "Buffered I/O instead of O_DIRECT");
  bench->add_flag("--compress", bench_args.compress,
                  "Saves store blocks byte-grouped and zstd-coded where smaller (format version 2)");
  bench->add_flag("--no-reshard", bench_no_reshard, "Skip the resharded loads");
  bench->add_flag("--no-async", bench_no_async, "Skip the async_save figures");
  bench->add_flag("--json", bench_args.json, "Print JSON for scripts (fields in bench/README.md)");
  bench->add_flag("--scale", bench_args.scale,
                  "Scale table instead: the same bytes saved at each --scale-ranks count and loaded at the same, "
                  "half and double count, model layout and transposed");
  bench->add_option("--scale-ranks", bench_args.scale_ranks, "Save rank counts of --scale")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  bench->add_option("--scale-max-ranks", bench_args.scale_max_ranks,
                    "Largest load rank count of --scale with thread ranks (under mpirun: the MPI world)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  bench->add_option("--scale-cells", bench_args.scale_cells,
                    "Only these loads of --scale: same_model, same_transposed, half_model, half_transposed, "
                    "double_model, double_transposed");
  bench->footer("Exit code: 0; 1 when a load returned wrong data or the run failed; 2 usage error.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the error
    return code == 0 ? kExitOk : kExitUsage;
  }

  const char* command = "";
  try {
    if (inspect->parsed()) {
      command = "inspect";
      return run_inspect(inspect_args);
    }
    if (verify->parsed()) {
      command = "verify";
      return run_verify(verify_args);
    }
    if (ls->parsed()) {
      command = "ls";
      return run_ls(ls_args);
    }
    if (convert->parsed()) {
      command = "convert";
      return run_convert(convert_args);
    }
    if (bench->parsed()) {
      command = "bench";
      bench_args.direct = !bench_buffered;
      bench_args.reshard = !bench_no_reshard;
      bench_args.async = !bench_no_async;
      for (int i = 0; i < argc; ++i) bench_args.command += (i ? " " : "") + std::string(argv[i]);
      if (dcpp::is_s3_path(bench_args.dir)) return dcpp::bench::run_s3_bench_command(bench_args);
      return bench_args.scale ? dcpp::bench::run_scale_command(bench_args)
                              : dcpp::bench::run_bench_command(bench_args);
    }
    if (demo->parsed()) {
      command = "demo";
      return run_demo(demo_args);
    }
  } catch (const dcpp::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dcpp %s: %s\n", command, e.message().c_str());
    return exit_code_for(e);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dcpp %s: %s\n", command, e.what());
    return kExitProblems;
  }
  return kExitUsage;
}
