"""InfluxDB over the v1 HTTP API: line protocol to ``/write``, InfluxQL to ``/query``.

That one dialect is served by InfluxDB 1.x, 2.x (v1 compatibility) and 3.x, see
/work/shared/reference/influxdb-apis.md. stdlib ``http.client``, one keep-alive connection
per thread (so one store can be shared by threads), plus one for begin_write().

Failures: connection errors, 429 and 5xx are retried with exponential backoff and end in
:class:`StoreUnavailable`; any other 4xx raises :class:`StoreError` with the server's message
at once. Writes are idempotent in InfluxDB (same series and time overwrite), so retrying a
write whose answer was lost cannot duplicate data.

Writes sort the 4xx answers by whose fault they are. 401, 403 and 404 (database not found)
are the server's state, not the data's: they raise :class:`StoreRefusing` (a
StoreUnavailable: the writer spools and retries). 413 raises :class:`WriteTooLarge` (split the
batch and retry). A 400 ``partial write: ... dropped=N`` raises :class:`PartialWrite` with N,
the only points refused. A write that gets no answer within *timeout_s* is not retried here:
it raises StoreUnavailable at once, so a server that accepts connections and never answers
holds the writer one timeout per batch, not one per retry.
"""


from dcim.store.influx.client import InfluxClient
from dcim.store.influx.errors import (
                                        InfluxRefused,
                                        PartialWrite,
                                        StoreRefusing,
                                        WriteTooLarge,
                                        write_error,
)
from dcim.store.influx.influxql import (
                                        LONG_TAG_LIST,
                                        _coerce,
                                        _column_cast,
                                        coerce,
                                        column_cast,
                                        quote_ident,
                                        quote_string,
                                        where_clause,
)
from dcim.store.influx.store import InfluxStore

__all__ = ["InfluxClient", "InfluxRefused", "InfluxStore", "LONG_TAG_LIST", "PartialWrite", "StoreRefusing",
           "WriteTooLarge", "_coerce", "_column_cast", "coerce", "column_cast", "quote_ident", "quote_string",
           "where_clause", "write_error"]
