// Private to the checkpoint layer: the byte form of the plans and write
// results save() exchanges between ranks, on comm/wire.h (failures travel in
// comm/rank_status.h's form).
#pragma once

#include <vector>

#include "comm/wire.h"
#include "dcpp/planner.h"

namespace dcpp::detail {

using comm_detail::WireReader;
using comm_detail::WireWriter;

void write_save_plan(WireWriter& w, const SavePlan& plan);
SavePlan read_save_plan(WireReader& r);

void write_results(WireWriter& w, const std::vector<WriteResult>& results);
std::vector<WriteResult> read_results(WireReader& r);

}  // namespace dcpp::detail
