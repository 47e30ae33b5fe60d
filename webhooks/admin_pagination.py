"""A changelist paginator that does not COUNT millions of rows.

The admin's paginator counts the whole (filtered) changelist to number its
pages. On an events table of millions of rows an unfiltered COUNT(*) takes
seconds on PostgreSQL, so without filters this uses the planner's estimate
(pg_class.reltuples, kept current by autovacuum/ANALYZE); a filtered list is
counted exactly (its filters are on indexed columns). SQLite has no estimate
and its embedded databases are small: it always counts.
"""

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self):
        query = self.object_list.query
        if connections[self.object_list.db].vendor == "postgresql" and not query.where:
            with connections[self.object_list.db].cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [self.object_list.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] > 0:
                return int(row[0])
        return super().count
