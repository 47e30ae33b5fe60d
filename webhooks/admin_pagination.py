"""A changelist paginator that does not COUNT millions of rows.

The admin's paginator counts the whole (filtered) changelist to number its
pages. On an events table of millions of rows that COUNT takes seconds on
PostgreSQL, so there the planner's estimate is used when it says the list is
large (pg_class.reltuples without filters, the EXPLAIN row estimate with
them); a list estimated under ESTIMATE_ABOVE rows is counted exactly. SQLite
has no estimates and its embedded databases are small: it always counts.
"""

import json

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

ESTIMATE_ABOVE = 10_000


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self):
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor == "postgresql":
            estimate = self._estimate(queryset, connection)
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return estimate
        return super().count

    @staticmethod
    def _estimate(queryset, connection) -> int | None:
        with connection.cursor() as cursor:
            if not queryset.query.where:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [queryset.model._meta.db_table])
                row = cursor.fetchone()
                return int(row[0]) if row and row[0] > 0 else None
            sql, params = queryset.order_by().values("pk").query.sql_with_params()
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return int(plan[0]["Plan"]["Plan Rows"])
