// Fuzz target: the restricted unpickler (src/storage/torch_dcp/pickle.h),
// with every global and persistent id allowed so that all opcodes are
// reachable; the resulting graph is walked node by node.
#include "fuzz_support.h"
#include "storage/torch_dcp/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dcpp;
  torch_dcp::UnpickleOptions options;
  options.allow_global = [](std::string_view, std::string_view) { return true; };
  options.allow_persistent_id = true;
  torch_dcp::PyGraph graph;
  if (!fuzz::parses([&] { graph = torch_dcp::unpickle(data, size, "fuzz.pkl", options); })) return 0;
  size_t edges = 0;
  for (size_t i = 0; i < graph.size(); ++i) {
    const torch_dcp::PyNode& node = graph.at(static_cast<uint32_t>(i));
    for (uint32_t item : node.items) {
      if (item >= graph.size()) __builtin_trap();  // a dangling reference
      ++edges;
    }
    if (node.state != torch_dcp::kNoNode && node.state >= graph.size()) __builtin_trap();
  }
  if (graph.root() >= graph.size()) __builtin_trap();
  (void)edges;
  return 0;
}
