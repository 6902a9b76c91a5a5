#include "checkpoint/collective.h"

#include <map>

namespace dcpp::detail {

std::vector<Blob> RankGroup::gather(const Blob& blob, int root) {
  if (!comm_) return {blob};
  return comm_->gather_v(blob, root);
}

Blob RankGroup::scatter(const std::vector<Blob>& blobs, int root) {
  if (!comm_) return blobs.at(0);
  return comm_->scatter_v(blobs, root);
}

std::vector<Blob> RankGroup::all_gather(const Blob& blob) {
  if (!comm_) return {blob};
  return comm_->all_gather_v(blob);
}

std::optional<RankFailure> capture(int rank, const std::function<void()>& fn) {
  try {
    fn();
    return std::nullopt;
  } catch (const Error& e) {
    return RankFailure{rank, e.code(), e.message()};
  } catch (const std::exception& e) {
    return RankFailure{rank, ErrorCode::kInternal, std::string("unexpected exception: ") + e.what()};
  } catch (...) {
    return RankFailure{rank, ErrorCode::kInternal, "unexpected non-standard exception"};
  }
}

Error collective_error(const std::string& operation, const std::string& phase, int world,
                       const std::vector<RankFailure>& failures) {
  // Group ranks that failed the same way (e.g. every rank missing the same key).
  std::vector<std::pair<std::pair<ErrorCode, std::string>, std::vector<int>>> causes;
  std::map<std::pair<ErrorCode, std::string>, size_t> index;
  for (const auto& f : failures) {
    auto key = std::make_pair(f.code, f.message);
    auto [it, inserted] = index.emplace(key, causes.size());
    if (inserted) causes.push_back({key, {}});
    causes[it->second].second.push_back(f.rank);
  }
  auto ranks = [&](const std::vector<int>& rs) {
    if (static_cast<int>(rs.size()) == world && world > 1) return std::string("every rank");
    std::string s = rs.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < rs.size(); ++i) s += (i ? ", " : "") + std::to_string(rs[i]);
    return s;
  };
  std::vector<int> all;
  for (const auto& f : failures) all.push_back(f.rank);
  std::string msg = operation + " failed on " + ranks(all) + " (of " + std::to_string(world) + ") while " + phase;
  for (const auto& [cause, rs] : causes) {
    msg += causes.size() == 1 ? ": " : "; " + ranks(rs) + ": ";
    msg += "[" + std::string(error_code_name(cause.first)) + "] " + cause.second;
  }
  return Error(failures.front().code, msg);
}

void exchange_status(RankGroup& group, const std::optional<RankFailure>& mine, const std::string& operation,
                     const std::string& phase) {
  WireWriter w;
  std::vector<RankFailure> own;
  if (mine) own.push_back(*mine);
  write_failures(w, own);
  std::vector<Blob> all = group.all_gather(w.take());
  std::vector<RankFailure> failures;
  for (const Blob& b : all) {
    WireReader r(b);
    for (auto& f : read_failures(r)) failures.push_back(std::move(f));
  }
  if (!failures.empty()) throw collective_error(operation, phase, group.size(), failures);
}

}  // namespace dcpp::detail
