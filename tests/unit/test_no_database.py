"""Unit tests run without a database: the guard that keeps them so works.

``conftest._no_database_in_unit_tests`` fails any test under ``unit/`` that
reaches FiftyOne's database, and ``mongod`` starts only for the tests of
``integration/`` and ``app/``. A guard that stopped refusing would let a
database test slip in here unnoticed, so it is checked like any other code.
"""

from __future__ import annotations

import fiftyone as fo
import pytest

import conftest


def test_a_unit_test_cannot_reach_the_database():
    with pytest.raises(conftest.DatabaseInUnitTest, match="tests/integration/"):
        fo.list_datasets()
    with pytest.raises(conftest.DatabaseInUnitTest):
        fo.Dataset()


def test_a_run_of_unit_tests_only_starts_no_mongod(request):
    # in a run that also holds integration or app tests their mongod is up
    # by now; a run of tests/unit alone must never have started one
    if all(item.path.is_relative_to(conftest.UNIT) for item in request.session.items):
        assert conftest.MONGOD is None
