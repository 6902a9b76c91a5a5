// Private to the Python module: one rank's native writer and reader, for
// storage layers that drive the save and load protocol from Python (the
// torch.distributed.checkpoint StorageWriter/StorageReader of dcpp.torch).
//
// RankWriter wraps a FileSystemWriter, RankReader a FileSystemReader. Python
// hands over the items of this rank's plan and zero-copy views of their data
// (or destinations); planning stays with the caller, while layout, checksums,
// direct I/O, verification and the atomic commit stay in C++. Objects are
// used by one rank (one thread) at a time; the GIL is released during I/O.
#pragma once

#include <nanobind/nanobind.h>

namespace dcpp::python {

namespace nb = nanobind;

void bind_rank_storage(nb::module_& m);

}  // namespace dcpp::python
