"""Fixtures of the dcpp.torch tests: gloo worlds of 1 to 4 ranks started once
per session, a session directory for checkpoints, and the scenario seed
(printed; DCPP_TEST_SEED replays it)."""
import os
import random
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import dcp_ranks  # noqa: E402


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("dcp")


@pytest.fixture(scope="session")
def worlds(work):
    started = {}

    def world(size):
        if size not in started:
            started[size] = dcp_ranks.World(size, str(work))
        return started[size]

    yield world
    for w in started.values():
        w.close()


@pytest.fixture
def seed(request):
    value = int(os.environ.get("DCPP_TEST_SEED", random.randrange(1 << 20)))
    print("%s: seed %d (DCPP_TEST_SEED=%d to replay)" % (request.node.name, value, value))
    return value
