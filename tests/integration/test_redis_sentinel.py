"""Sentinel fails a frozen primary over, on private processes configured with the compose ``redis-sentinel``
profile's directives: one primary, one replica, three sentinels with a quorum of 2. After a SIGSTOP of the primary
every sentinel names the replica, the replica is a primary, and the old primary, thawed, rejoins as a replica.
Outcomes only, no timed assertion (``python -m bench.redis_sentinel`` prints the time). See notes/redis.md,
"Sentinel and Cluster".
"""

from __future__ import annotations

from bench.redis_sentinel import fail_over_a_frozen_primary, private_sentinels


def test_a_frozen_primary_is_replaced_by_its_replica_and_rejoins_as_a_replica() -> None:
    with private_sentinels() as setup:
        outcome = fail_over_a_frozen_primary(setup)
    assert outcome.quorum == 2
    assert outcome.every_sentinel_names == {setup.replica_port}
    assert outcome.replica_role == "master"
    assert outcome.old_primary_role_after_thaw == "slave"
