// DLPack 0.6 interchange for dcpp tensors, so another framework's tensors can
// be checkpointed without a copy.
//
// to_dlpack: the returned DLManagedTensor keeps the tensor's storage alive
// until its deleter is called (by the consumer). from_dlpack: the returned
// Tensor borrows the producer's memory and calls its deleter when the last
// handle goes. kDLCPU and kDLCUDA tensors are accepted; a kDLCUDA tensor
// becomes a dcpp tensor on that CUDA device (Error(kUnsupported) naming the
// device when this build or machine has no such device), and a CUDA tensor
// exports as kDLCUDA with its device index. Types DLPack 0.6 cannot
// express (bool, float8) raise Error(kUnsupported). When from_dlpack throws,
// it has not taken ownership: the caller still has to call the deleter.
#pragma once

#include "dcpp/tensor.h"

struct DLManagedTensor;

namespace dcpp {

DLManagedTensor* to_dlpack(const Tensor& tensor);
Tensor from_dlpack(DLManagedTensor* managed);

}  // namespace dcpp
