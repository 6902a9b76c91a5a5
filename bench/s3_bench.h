// `dcpp bench --dir s3://bucket/prefix`: save and load against an
// S3-compatible store (endpoint and keys from the environment), beside the
// same bytes moved by dcpp's own S3 client without a checkpoint (one object
// per rank, written whole and read back in 16 MiB ranged GETs: the transfer
// ceiling) and by boto3's transfer manager (bench/s3_boto3_bench.py, with
// its default concurrency), interleaved run by run. Ratios are medians of
// per-run ratios.
#pragma once

#include "checkpoint_bench.h"

namespace dcpp::bench {

// Sharded fp32 weights of `layers` × [hidden, 4·hidden] over `ranks` thread
// ranks. Returns the exit code (1 when a load returned wrong bytes).
int run_s3_bench_command(const BenchOptions& options);

}  // namespace dcpp::bench
