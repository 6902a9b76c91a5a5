// `make bench`: the end-to-end checkpoint benchmark (checkpoint_bench.h).
#include "checkpoint_bench.h"

int main(int argc, char** argv) { return dcpp::bench::bench_main(argc, argv); }
