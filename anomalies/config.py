"""Reading and changing a tenant's detector settings: one function for the dashboard, API and admin."""

from dataclasses import dataclass

from anomalies.detectors.base import ThresholdError
from anomalies.models import DetectorConfig
from anomalies.registry import get_detector, load_detectors


class UnknownDetector(LookupError):
    pass


@dataclass(frozen=True)
class DetectorView:
    name: str
    title: str
    description: str
    enabled: bool
    thresholds: dict  # effective values
    schema: list[dict]  # each threshold's type, default, min, max, help


def describe_detectors(tenant) -> list[DetectorView]:
    overrides = {c.detector: c for c in DetectorConfig.objects.filter(tenant=tenant)}
    views = []
    for name, detector in sorted(load_detectors().items()):
        config = overrides.get(name)
        views.append(
            DetectorView(
                name=name,
                title=detector.title,
                description=detector.description,
                enabled=config.enabled if config else True,
                thresholds={**detector.defaults(), **(config.thresholds if config else {})},
                schema=[t.as_schema() for t in detector.thresholds],
            )
        )
    return views


def update_detector(tenant, name: str, *, enabled: bool | None = None, thresholds: dict | None = None) -> DetectorConfig:
    """Validate, then store: an out-of-range value raises ThresholdError and changes nothing."""
    detector = get_detector(name)
    if detector is None:
        raise UnknownDetector(f"no detector named {name!r}")
    cleaned = detector.validate_thresholds(thresholds) if thresholds is not None else None
    config, _ = DetectorConfig.objects.get_or_create(tenant=tenant, detector=name)
    if enabled is not None:
        config.enabled = enabled
    if cleaned is not None:
        # Values equal to the default are not stored, so later default changes reach the tenant.
        defaults = detector.defaults()
        config.thresholds = {k: v for k, v in {**config.thresholds, **cleaned}.items() if defaults.get(k) != v}
    config.save()
    return config


__all__ = ["DetectorView", "ThresholdError", "UnknownDetector", "describe_detectors", "update_detector"]
