"""Checkpoint field names reach the Lua scripts that read and write the checkpoint hash."""

from __future__ import annotations

import pytest

from pairwise import checkpoint_fields


def test_scripts_name_the_fields_defined_here() -> None:
    source = "redis.call('HGET', KEYS[1], '$votes_counted') .. '$last_id'"

    assert checkpoint_fields.lua(source) == (
        f"redis.call('HGET', KEYS[1], '{checkpoint_fields.VOTES_COUNTED}') .. "
        f"'{checkpoint_fields.LAST_ID}'")


def test_a_field_not_defined_here_stops_the_script_being_built() -> None:
    with pytest.raises(KeyError, match="vote_count"):
        checkpoint_fields.lua("redis.call('HGET', KEYS[1], '$vote_count')")
