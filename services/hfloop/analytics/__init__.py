"""Analytics wing: the full event history in ClickHouse (chDB embedded or a server).

* ``migrations/`` versioned DDL, applied by :func:`hfloop.analytics.store.migrate`.
* ``sink.py`` the idempotent Kafka -> ClickHouse sink (``hfloop worker --role analytics``).
* ``queries/`` named, documented analyst SQL; ``queries.py`` loads and runs them.
* ``guard.py`` read-only and per-tenant enforcement of ad-hoc SQL; ``api.py`` the HTTP route.
* ``report.py`` the HTML report; ``cli.py`` ``hfloop analytics migrate|query|report``.
"""
