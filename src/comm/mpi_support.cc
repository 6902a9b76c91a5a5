// Backend-independent parts of the MPI entry points, and their fallbacks
// when dcpp is built without MPI (src/comm/mpi/ is then not compiled).
#include <cstdlib>

#include "dcpp/comm.h"
#include "dcpp/error.h"

namespace dcpp {

bool launched_by_mpirun() {
  // Open MPI's launcher sets OMPI_COMM_WORLD_SIZE; PMI/PMIx launchers (srun,
  // MPICH's hydra) set their own size variables.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

#ifndef DCPP_WITH_MPI
bool mpi_available() { return false; }

CommPtr mpi_world() {
  throw Error(ErrorCode::kUnsupported,
              "mpi_world(): dcpp was built without MPI support (configure with -DDCPP_WITH_MPI=ON and Open MPI "
              "installed)");
}
#endif

}  // namespace dcpp
