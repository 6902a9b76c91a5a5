// A small MPI program whose rank 1 misbehaves, run by mpi_failure_test.sh
// under mpirun -np 3. Every rank loops over collectives; at step 5 rank 1
//   fail: calls fail("injected") from a helper thread while its main thread
//         waits inside an all_reduce that ranks 0 and 2 join late, or
//   stop: stops participating (sleeps), so the others' deadline expires.
// Either way the job must end quickly with a non-zero exit, stderr naming the
// rank and the cause, and no process left behind.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "dcpp/comm.h"

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s fail|stop [timeout_ms]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const int timeout_ms = argc > 2 ? std::atoi(argv[2]) : 10000;
  dcpp::CommPtr world = dcpp::mpi_world();
  world->set_timeout(std::chrono::milliseconds(timeout_ms));
  std::thread helper;
  for (int step = 0; step < 20; ++step) {
    if (step == 5) {
      if (world->rank() == 1 && mode == "fail") {
        helper = std::thread([world] {
          std::this_thread::sleep_for(300ms);
          world->fail("injected");
        });
      } else if (world->rank() == 1 && mode == "stop") {
        std::this_thread::sleep_for(300s);
        return 0;
      } else if (mode == "fail") {
        std::this_thread::sleep_for(3s);  // rank 1 is inside the all_reduce meanwhile
      }
    }
    int32_t v = world->rank();
    world->all_reduce(&v, 1, dcpp::DType::kInt32, dcpp::ReduceOp::kSum);
    world->barrier();
  }
  if (helper.joinable()) helper.join();
  std::printf("rank %d completed every step (unexpected)\n", world->rank());
  return 0;
}
