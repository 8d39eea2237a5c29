"""Every Prometheus metric syncd exports, on a registry the daemon owns.

``Metrics`` is built on a ``CollectorRegistry`` the daemon creates (never the global
one), so each test reads its own values. It is the pipeline's ``Observer`` and the
DingTalk client's ``CallObserver`` (counters and histograms fed as work happens), and it
holds the gauges computed at scrape time: ``refresh()`` runs a few named queries
(backlogs, ages, quota use, pauses, periodic-job turns) and reads the Stream, LISTEN and
pool state; the ``/metrics`` handler awaits it, then renders.

- ``declared``: the metrics counted as work happens (names, labels, buckets);
- ``scrape``: the gauges computed at scrape time;
- ``labels``: the closed sets label values come from;
- ``observers``: ``Metrics``, which feeds the first from what it is told.

Every label value comes from a closed set: stage names, configured kinds (anything else
is ``unknown``), approval states, channels, endpoints, outcomes, syncd's exception
classes and its own parking reasons (anything else is ``other``). Never an id, a user,
a process code or a raw DingTalk code. The names are listed in the operations guide.
"""

from __future__ import annotations

from syncd.metrics.observers import Metrics
from syncd.metrics.scrape import Sources

__all__ = ["Metrics", "Sources"]
