"""``syncd demo``: the whole system on one machine, in one command.

An embedded PostgreSQL, the DingTalk simulator with a demo world, sample business tables
with capture triggers, a small simulated legacy application inserting requests, and the
daemon, with a live view of what happens and a summary at the end.
"""
