// save() and load(): the collective drivers of the planners and the storage
// protocol (storage.h), with the collective error protocol of collective.h.
#include "dcpp/save_load.h"

#include <set>

#include "checkpoint/collective.h"
#include "checkpoint/wire.h"
#include "dcpp/error.h"

#ifndef DCPP_VERSION
#define DCPP_VERSION "unknown"
#endif

namespace dcpp {

namespace {

using comm_detail::RankFailure;
using detail::RankGroup;
using detail::read_results;
using detail::read_save_plan;
using detail::write_results;
using detail::write_save_plan;
using detail::WireReader;
using detail::WireWriter;

CommPtr communicator_of(const FlatStateDict& flat) {
  CommPtr comm;
  std::string first_key;
  for (const auto& key : flat.keys) {
    const StateValue& v = flat.values.at(key);
    if (!v.is_dtensor()) continue;
    const DTensor& dt = v.as<DTensor>();
    if (!dt.defined()) continue;
    const CommPtr& c = dt.device_mesh().comm();
    if (!comm) {
      comm = c;
      first_key = key;
    } else if (c.get() != comm.get()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "DTensors '" + first_key + "' and '" + key +
                      "' live on meshes over different communicators; pass the world communicator in the "
                      "options (comm)");
    }
  }
  return comm;
}

void check_coordinator(int coordinator, int world) {
  if (coordinator < 0 || coordinator >= world) {
    throw Error(ErrorCode::kInvalidArgument, "coordinator rank " + std::to_string(coordinator) +
                                                 " is outside the world of " + std::to_string(world) + " ranks");
  }
}

std::vector<PathElement> path_of_dotted(const std::string& key) {
  std::vector<PathElement> path;
  PathElement e;
  e.key = key;
  path.push_back(std::move(e));
  return path;
}

// The metadata skeleton writer.finish() completes: every key's dtype, global
// shape or value kind, and its nesting.
Metadata metadata_skeleton(const std::vector<SavePlan>& local_plans, const SavePlanner& planner, int world) {
  Metadata md;
  md.dcpp_version = DCPP_VERSION;
  md.world_size = world;
  for (const auto& plan : local_plans) {
    for (const auto* items : {&plan.items, &plan.empty_chunks}) {
      for (const auto& item : *items) {
        if (item.type == WriteItemType::kTensor) {
          TensorMeta& tm = md.tensors[item.fqn];
          tm.dtype = item.dtype;
          tm.global_shape = item.global_shape;
        } else {
          md.values[item.fqn].kind = item.value_kind;
        }
      }
    }
  }
  auto paths = planner.paths();
  auto add_path = [&](const std::string& key) {
    auto it = paths.find(key);
    md.paths[key] = it != paths.end() ? it->second : path_of_dotted(key);
  };
  for (const auto& [key, tm] : md.tensors) add_path(key);
  for (const auto& [key, vm] : md.values) add_path(key);
  return md;
}


class SaveDriver {
 public:
  SaveDriver(const StateDict& sd, StorageWriter& writer, const SaveOptions& options)
      : sd_(sd), writer_(writer), options_(options), group_(nullptr) {}

  void run() {
    // With a given communicator a bad state dict on one rank becomes that
    // rank's planning failure; without one, there is no group to tell yet.
    early_ = comm_detail::capture(0, [&] { flat_ = flatten_state_dict(sd_); });
    if (early_ && !options_.comm) throw Error(early_->code, early_->message);
    CommPtr comm = options_.comm ? options_.comm : communicator_of(flat_);
    group_ = RankGroup(comm);
    rank_ = group_.rank();
    world_ = group_.size();
    if (early_) early_->rank = rank_;
    coord_ = options_.coordinator_rank;
    check_coordinator(coord_, world_);
    planner_ = options_.planner ? options_.planner : std::make_shared<DefaultSavePlanner>();
    if (auto* d = dynamic_cast<DefaultSavePlanner*>(planner_.get()); d && options_.check_replicated) {
      SavePlannerOptions o = d->options();
      o.check_replicated = true;
      d->set_options(o);
    }
    try {
      plan();
      write();
      commit();
    } catch (...) {
      // Whatever failed, on whichever rank: every rank gets here (the status
      // exchanges make sure of it) and removes what this save wrote.
      writer_.abort();
      throw;
    }
  }

 private:
  bool is_coord() const { return rank_ == coord_; }

  // Local plans → coordinator → global plan → each rank's final plan.
  void plan() {
    SavePlan local;
    auto failure = early_ ? early_ : comm_detail::capture(rank_, [&] {
      writer_.set_up(rank_, world_, is_coord());
      planner_->set_up(flat_, rank_, is_coord());
      local = planner_->create_local_plan();
      if (is_coord()) writer_.prepare();
    });
    WireWriter w;
    comm_detail::write_status(w, failure);
    if (!failure) write_save_plan(w, local);
    std::vector<Blob> gathered = group_.gather(w.take(), coord_);

    std::vector<Blob> replies;
    if (is_coord()) {
      std::vector<SavePlan> plans(world_);
      std::vector<RankFailure> failures =
          comm_detail::read_statuses(gathered, [&](WireReader& rd, int r) { plans[r] = read_save_plan(rd); });
      std::vector<SavePlan> finals;
      if (failures.empty()) {
        auto f = comm_detail::capture(rank_, [&] {
          metadata_ = metadata_skeleton(plans, *planner_, world_);
          finals = planner_->create_global_plan(std::move(plans));
          if (static_cast<int>(finals.size()) != world_) {
            throw Error(ErrorCode::kInternal, "the global plan has " + std::to_string(finals.size()) +
                                                  " plans for " + std::to_string(world_) + " ranks");
          }
        });
        if (f) failures.push_back(*f);
      }
      replies.resize(world_);
      for (int r = 0; r < world_; ++r) {
        WireWriter rw;
        comm_detail::write_status(rw, failures);
        if (failures.empty()) write_save_plan(rw, finals[r]);
        replies[r] = rw.take();
      }
    }
    Blob mine = group_.scatter(replies, coord_);
    WireReader rd(mine, coord_);
    auto failures = comm_detail::read_status(rd);
    if (!failures.empty()) throw comm_detail::collective_error("save", "planning", world_, failures);
    final_plan_ = read_save_plan(rd);
  }

  void write() {
    std::vector<WriteResult> results;
    auto failure = comm_detail::capture(rank_, [&] {
      final_plan_ = planner_->finish_plan(std::move(final_plan_));
      results = writer_.write_data(final_plan_, *planner_);
    });
    WireWriter w;
    comm_detail::write_status(w, failure);
    if (!failure) write_results(w, results);
    std::vector<Blob> gathered = group_.gather(w.take(), coord_);
    if (is_coord()) {
      results_.resize(world_);
      write_failures_ =
          comm_detail::read_statuses(gathered, [&](WireReader& rd, int r) { results_[r] = read_results(rd); });
    }
  }

  // The coordinator writes the metadata (the commit) if every rank wrote its
  // data; then everyone learns the outcome.
  void commit() {
    std::string phase = "writing data";
    std::vector<Blob> replies;
    if (is_coord()) {
      std::vector<RankFailure> failures = write_failures_;
      if (failures.empty()) {
        phase = "committing the metadata";
        auto f = comm_detail::capture(rank_, [&] { writer_.finish(std::move(metadata_), results_); });
        if (f) failures.push_back(*f);
      }
      WireWriter w;
      w.str(phase);
      comm_detail::write_status(w, failures);
      replies.assign(world_, w.take());
    }
    Blob mine = group_.scatter(replies, coord_);
    WireReader rd(mine, coord_);
    phase = rd.str();
    auto failures = comm_detail::read_status(rd);
    if (!failures.empty()) throw comm_detail::collective_error("save", phase, world_, failures);
  }

  const StateDict& sd_;
  StorageWriter& writer_;
  const SaveOptions& options_;
  RankGroup group_;
  FlatStateDict flat_;
  std::shared_ptr<SavePlanner> planner_;
  int rank_ = 0, world_ = 1, coord_ = 0;
  Metadata metadata_;
  SavePlan final_plan_;
  std::vector<std::vector<WriteResult>> results_;
  std::vector<RankFailure> write_failures_;
  std::optional<RankFailure> early_;
};

}  // namespace

CommPtr infer_communicator(const StateDict& state_dict) { return communicator_of(flatten_state_dict(state_dict)); }

void save(const StateDict& state_dict, StorageWriter& writer, const SaveOptions& options) {
  SaveDriver(state_dict, writer, options).run();
}

void load(StateDict& state_dict, StorageReader& reader, const LoadOptions& options) {
  CommPtr comm = options.comm ? options.comm : infer_communicator(state_dict);
  RankGroup group(comm);
  const int rank = group.rank();
  const int world = group.size();
  check_coordinator(options.coordinator_rank, world);
  const bool is_coord = rank == options.coordinator_rank;
  std::shared_ptr<LoadPlanner> planner = options.planner ? options.planner : std::make_shared<DefaultLoadPlanner>();
  if (auto* d = dynamic_cast<DefaultLoadPlanner*>(planner.get()); d && options.allow_partial_load) {
    LoadPlannerOptions o = d->options();
    o.allow_partial_load = true;
    d->set_options(o);
  }

  Metadata metadata;
  LoadPlan plan;
  comm_detail::run_collective(group.comm(), "load", "planning", [&] {
    reader.set_up(rank, world, is_coord);
    reader.set_communicator(comm);
    metadata = reader.read_metadata();
    planner->set_up(state_dict, metadata, rank, is_coord);
    plan = planner->create_local_plan();
  });
  comm_detail::run_collective(group.comm(), "load", "reading data", [&] { reader.read_data(plan, *planner); });
  comm_detail::run_collective(group.comm(), "load", "handing the loaded state back", [&] { planner->finish(); });
}

}  // namespace dcpp
