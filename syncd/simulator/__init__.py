"""A faithful local DingTalk for approvals: API, event push, rules and fault injection.

::

    sim = Simulator(World.default())
    async with serve(sim) as server:
        print(server.base_url)
"""

from __future__ import annotations

from syncd.simulator.core import Simulator
from syncd.simulator.server import RunningServer, serve
from syncd.simulator.world import World

__all__ = ["RunningServer", "Simulator", "World", "serve"]
