"""Fault campaigns: races, kills, injected database faults and fuzzed inputs, with figures.

``python -m reliability`` (``make reliability``) runs every campaign on SQLite and on PostgreSQL and
prints one table (tried, lost, doubled, half-written, tracebacks), written to ``docs/reliability.md``;
``tests/test_reliability.py`` runs the same code with small counts.

- ``backends``: a database of its own per campaign (a SQLite file, or a PostgreSQL database created and
  dropped).
- ``world``: cases built through the transition service at the stage a trial needs.
- ``worker``: the process under test, running ``conum`` commands (and the delivery) in-process, fed one
  JSON line at a time; the only place where database faults are injected (``CONUM_FAULTS``).
- ``invariants``: what must hold on the database after every trial.
- ``campaigns``: races, kills, faults; ``fuzz``: property-based inputs through every parser.
"""
