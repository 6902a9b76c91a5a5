// Not compiled: the layering check's own test adds this file to the tensor
// layer, where including the checkpoint manager (api layer) must be rejected.
#pragma once

#include "dcpp/checkpoint_manager.h"
