#include "comm/rank_status.h"

#include <map>
#include <utility>

namespace dcpp::comm_detail {

RankFailure failure_of(int rank, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return RankFailure{rank, e.code(), e.message()};
  } catch (const std::exception& e) {
    return RankFailure{rank, ErrorCode::kInternal, std::string("unexpected exception: ") + e.what()};
  } catch (...) {
    return RankFailure{rank, ErrorCode::kInternal, "unexpected non-standard exception"};
  }
}

std::optional<RankFailure> capture(int rank, const std::function<void()>& fn) {
  try {
    fn();
    return std::nullopt;
  } catch (...) {
    return failure_of(rank, std::current_exception());
  }
}

void write_status(WireWriter& w, const std::vector<RankFailure>& failures) {
  w.u64(failures.size());
  for (const auto& f : failures) {
    w.i64(f.rank);
    w.u8(static_cast<uint8_t>(f.code));
    w.str(f.message);
  }
}

void write_status(WireWriter& w, const std::optional<RankFailure>& mine) {
  write_status(w, mine ? std::vector<RankFailure>{*mine} : std::vector<RankFailure>{});
}

std::vector<RankFailure> read_status(WireReader& r) {
  const uint64_t n = r.u64();
  std::vector<RankFailure> out;
  for (uint64_t i = 0; i < n; ++i) {
    RankFailure f;
    f.rank = static_cast<int>(r.i64());
    f.code = static_cast<ErrorCode>(r.u8());
    f.message = r.str();
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<RankFailure> read_statuses(const std::vector<Blob>& blobs,
                                       const std::function<void(WireReader&, int)>& ok) {
  std::vector<RankFailure> failures;
  for (size_t r = 0; r < blobs.size(); ++r) {
    WireReader rd(blobs[r], static_cast<int>(r));
    std::vector<RankFailure> f = read_status(rd);
    if (f.empty() && ok) ok(rd, static_cast<int>(r));
    for (auto& x : f) failures.push_back(std::move(x));
  }
  return failures;
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

void exchange_status(Communicator* comm, const std::optional<RankFailure>& mine, const std::string& operation,
                     const std::string& phase) {
  std::vector<RankFailure> failures;
  if (comm) {
    WireWriter w;
    write_status(w, mine);
    failures = read_statuses(comm->all_gather_v(w.take()));
  } else if (mine) {
    failures.push_back(*mine);
  }
  if (!failures.empty()) throw collective_error(operation, phase, comm ? comm->size() : 1, failures);
}

void run_collective(Communicator* comm, const std::string& operation, const std::string& phase,
                    const std::function<void()>& fn) {
  exchange_status(comm, capture(comm ? comm->rank() : 0, fn), operation, phase);
}

namespace {

void broadcast_blob(Communicator& comm, Blob& blob, int root) {
  uint64_t n = blob.size();
  comm.broadcast(&n, sizeof n, root);
  blob.resize(n);
  if (n > 0) comm.broadcast(blob.data(), n, root);
}

}  // namespace

Blob decide_on_root(Communicator* comm, int root, const std::function<Blob()>& fn) {
  const int world = comm ? comm->size() : 1;
  const int rank = comm ? comm->rank() : 0;
  Blob message;
  if (rank == root) {
    Blob payload;
    auto failure = capture(rank, [&] { payload = fn(); });
    WireWriter w;
    write_status(w, failure);
    if (!failure) w.str(payload);
    message = w.take();
  }
  if (world > 1) broadcast_blob(*comm, message, root);
  WireReader r(message, root);
  std::vector<RankFailure> failures = read_status(r);
  if (failures.empty()) return r.str();
  std::string text = failures.front().message;
  if (world > 1) text += " (decided by coordinator rank " + std::to_string(root) + ")";
  throw Error(failures.front().code, text);
}

}  // namespace dcpp::comm_detail
