"""Detectors by stable name (DESIGN.md lists the names; the API and settings use them).

Every module in anomalies/detectors/ registers its class with @register, and
`load_detectors()` imports them all once, so adding a detector is adding a file.
"""

import importlib
import pkgutil

DETECTORS: dict[str, type] = {}
_loaded = False


def register(detector_class: type) -> type:
    name = detector_class.name
    if name in DETECTORS and DETECTORS[name] is not detector_class:
        raise ValueError(f"two detectors are named {name!r}")
    DETECTORS[name] = detector_class
    return detector_class


def load_detectors() -> dict[str, type]:
    global _loaded
    if not _loaded:
        import anomalies.detectors as package

        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "base" and not module.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{module.name}")
        _loaded = True
    return DETECTORS


def get_detector(name: str) -> type | None:
    return load_detectors().get(name)


def detectors_for(event_type: str) -> list[type]:
    return [d for d in load_detectors().values() if event_type in d.event_types]


def subscribed_event_types() -> set[str]:
    return {t for d in load_detectors().values() for t in d.event_types}


def scanning_detectors() -> list[type]:
    return [d for d in load_detectors().values() if d.has_scan]
