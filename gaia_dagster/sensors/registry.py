"""Miner registry -> the ``miners`` dynamic partitions and the validator DB.

Adds, never deletes: deleting a dynamic partition would drop that miner from every date. A miner
that leaves is kept in the validator DB and its partitions with its history, marked unlisted, and
is no longer selected; it is listed again if it comes back. A tick whose read is the one the last
tick applied (same entries, same miners in the DB) writes nothing: the cursor holds its digest.
"""

import hashlib


from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.assets.partitions import miner_partitions
from gaia_dagster.core.registry import normalise_registry
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry, registry_entries
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval


def read_digest(entries: list, duplicates: list, miners_in_db: int) -> str:
    """What a tick applied: the normalised entries, the duplicates set aside, and the DB's miner count."""
    text = repr(([(e.hotkey, e.base_url, e.uid) for e in entries], [d.describe() for d in duplicates], miners_in_db))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@sensor(name="miner_registry_sensor", minimum_interval_seconds=sensor_interval(60), default_status=DefaultSensorStatus.RUNNING,
        description="Reads the miner registry (the registry file, or the subnet's metagraph when "
                    "GAIA_REGISTRY_SOURCE=chain), drops duplicate hotkeys and endpoints (warned and counted), "
                    "registers miners in the validator DB by hotkey and UID and adds their dynamic partitions.")
def miner_registry_sensor(context: SensorEvaluationContext, miner_registry: MinerRegistry, chain: SubnetChain,
                          miner_access: MinerAccess, validator_db: ValidatorDB) -> SensorResult | SkipReason:
    own = miner_access.validator_hotkey() if miner_registry.uses_chain() else ""
    entries, duplicates = normalise_registry(registry_entries(miner_registry, chain, own))
    repo = validator_db.repo
    digest = read_digest(entries, duplicates, len(repo.miners()))
    if context.cursor == digest:
        return SkipReason(f"{len(entries)} miners, the registry is as last applied")
    for dup in duplicates:
        context.log.warning(f"miner registry: {dup.describe()}")
        repo.record_duplicate("registry", f"{dup.kind}:{dup.entry.hotkey}", detail=dup.describe())
    new_in_db = [e.hotkey for e in entries if repo.upsert_miner(e.hotkey, e.base_url, e.uid)]
    listed = {e.hotkey: e for e in entries}
    for hotkey in new_in_db:
        context.log.info(f"registry: new miner UID {listed[hotkey].uid} {hotkey} at {listed[hotkey].base_url}")
    left = repo.set_listed(set(listed))
    for hotkey in left:
        context.log.info(f"registry: miner {hotkey} left the registry; kept with its history, no longer selected")
    known = set(context.instance.get_dynamic_partitions(miner_partitions.name))
    to_add = [e.hotkey for e in entries if e.hotkey not in known]
    if to_add:
        context.instance.add_dynamic_partitions(miner_partitions.name, to_add)
    context.update_cursor(read_digest(entries, duplicates, len(repo.miners())))
    if not to_add and not new_in_db and not duplicates and not left:
        return SkipReason(f"{len(entries)} miners, nothing new")
    context.log.info(f"registry: {len(entries)} miners, {len(to_add)} new partitions, "
                     f"{len(duplicates)} duplicates set aside")
    return SensorResult(run_requests=[])
