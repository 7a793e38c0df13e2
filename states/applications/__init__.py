"""A structure's application: it applies, the préfet gives an opinion, the committee attributes posts.

The second state machine of the programme, beside the recruitment case: one
declarative table (``table``), its data (``data``), its rules as named guards
(``rules``), one transition service (``service``) with a hash-chained history,
outbox rows and deadlines swept by the same sweep as cases, and its read
models (``views``, ``figures``).
"""
