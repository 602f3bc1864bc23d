"""The collector's settings inside a bulk step: changed while it runs, restored after, even on error."""

import gc

import pytest

from leadnorm.steps.allocation import YOUNGEST_THRESHOLD, bulk_allocation


def test_freezes_and_restores_even_when_the_step_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), bulk_allocation():
        assert gc.get_threshold()[0] == YOUNGEST_THRESHOLD
        assert gc.get_freeze_count() > 0
        raise RuntimeError("step failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_nested_block_leaves_the_outer_settings_alone():
    before = gc.get_threshold()
    with bulk_allocation():
        with bulk_allocation():
            pass
        assert gc.get_threshold()[0] == YOUNGEST_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before


def test_garbage_cycles_made_inside_are_still_collected():
    class Node:
        pass

    with bulk_allocation():
        node = Node()
        node.self = node
        del node
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, Node)]
