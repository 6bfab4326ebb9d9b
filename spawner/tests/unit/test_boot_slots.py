"""Boot slots: how many servers boot at once on one engine (pure asyncio logic)."""

import asyncio

from hubfleet_spawner.docker_api import BootSlots


async def test_servers_beyond_the_slots_wait_until_one_is_done():
    slots = BootSlots(2)
    booted = []
    done = {name: asyncio.Event() for name in "abc"}

    async def boot(name):
        async with slots.slot(hold_at_most=60):
            booted.append(name)
            await done[name].wait()

    tasks = [asyncio.ensure_future(boot(name)) for name in "abc"]
    await asyncio.sleep(0.01)
    assert booted == ["a", "b"] and slots.full
    done["a"].set()
    await asyncio.sleep(0.01)
    assert booted == ["a", "b", "c"]
    done["b"].set()
    done["c"].set()
    await asyncio.gather(*tasks)
    assert not slots.full


async def test_a_slow_server_gives_up_its_slot_after_hold_at_most():
    slots = BootSlots(1)
    slow_done = asyncio.Event()
    booted = []

    async def boot(name, wait):
        async with slots.slot(hold_at_most=0.05):
            booted.append(name)
            await wait()

    slow = asyncio.ensure_future(boot("slow", slow_done.wait))
    await asyncio.sleep(0.01)
    quick = asyncio.ensure_future(boot("quick", lambda: asyncio.sleep(0)))
    await asyncio.wait_for(quick, 2)  # went ahead once the slow one held its slot 0.05 s
    assert booted == ["slow", "quick"]
    slow_done.set()
    await slow
    # The slow one's slot was released once, not twice: one slot, free again.
    assert not slots.full
    async with slots.slot(hold_at_most=1):
        assert slots.full


async def test_a_failed_boot_frees_its_slot():
    slots = BootSlots(1)

    async def failing():
        async with slots.slot(hold_at_most=60):
            raise RuntimeError("the container exited")

    for _ in range(3):
        try:
            await failing()
        except RuntimeError:
            pass
    assert not slots.full
