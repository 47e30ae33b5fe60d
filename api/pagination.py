from rest_framework.pagination import CursorPagination


class NewestFirstCursor(CursorPagination):
    """Opaque cursors (`next`/`previous` URLs); stable while rows are added."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AnomalyCursor(NewestFirstCursor):
    ordering = ("-created_at", "-id")


class EventCursor(NewestFirstCursor):
    ordering = ("-received_at", "-id")


class DeliveryCursor(NewestFirstCursor):
    ordering = ("-created_at", "-id")
