"""Shared fixtures of the binding tests: a seeded generator (its seed
printed, DCPP_TEST_SEED to replay) and the paths ctest passes in."""
import os
import random

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    seed = int(os.environ.get("DCPP_TEST_SEED", random.randrange(1 << 31)))
    print("%s: seed %d (DCPP_TEST_SEED=%d to replay)" % (request.node.name, seed, seed))
    return np.random.default_rng(seed)


def env_path(name):
    path = os.environ.get(name)
    if not path:
        pytest.fail("%s is not set: run these tests through ctest, which passes it" % name)
    return path


# The dcpp.torch tests need PyTorch and several processes: `make interop`
# runs them (DCPP_TORCH_TESTS=1), the binding tests of `make test` do not.
collect_ignore = [] if os.environ.get("DCPP_TORCH_TESTS") else ["torch_dcp"]
