"""The alarm engine: rules as data (``rules/``) evaluated against the store on a schedule
(``engine``), alarm state and history in the store's ``alarm`` measurement (``state``),
notifications to Alertmanager, webhooks and e-mail (``notify/``), and the functions the
dashboard calls to list, acknowledge and shelve alarms (``actions``).

Pure logic in the middle (``evaluate``: readings -> findings; ``transitions``: findings +
stored states -> writes and events), I/O at the edges (``engine``, ``notify``, ``actions``).
Depends on ``dcim`` only; only ``dcim/cli`` wires it in.
"""
