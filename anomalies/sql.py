"""Database expressions detectors share, written once for SQLite and PostgreSQL."""

from django.db.models import BigIntegerField, ExpressionWrapper, Func, Value


class EpochSeconds(Func):
    """Whole seconds since 1970 of a datetime column, in native SQL on SQLite and PostgreSQL."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # '%%%%s' becomes '%%s' in the SQL, which the backend passes to SQLite as '%s'.
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)",
                           **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection,
                           template="CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)", **extra)


def epoch_bucket(field: str, seconds: int) -> ExpressionWrapper:
    """The number of the `seconds`-long UTC interval (counted from 1970) a datetime column falls in."""
    return ExpressionWrapper(EpochSeconds(field) / Value(seconds), output_field=BigIntegerField())
