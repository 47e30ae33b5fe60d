"""Detectors by stable name. The detection issue fills this registry.

A detector class declares `name` and `event_types` and implements
`evaluate(ctx, event)`; `register` adds it here. The worker asks which event
types have subscribers so it loads payloads only for events someone reads.
"""

DETECTORS: dict[str, type] = {}


def register(detector_class: type) -> type:
    DETECTORS[detector_class.name] = detector_class
    return detector_class


def detectors_for(event_type: str) -> list[type]:
    return [d for d in DETECTORS.values() if event_type in d.event_types]


def subscribed_event_types() -> set[str]:
    return {t for d in DETECTORS.values() for t in d.event_types}
