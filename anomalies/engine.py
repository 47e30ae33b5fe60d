"""The detection engine: where stored events meet the detectors.

`evaluate_event` is called by the worker for each claimed event, inside the
event's tenant scope. With an empty registry it does nothing; the detection
issue plugs the detectors and the anomaly upsert in here.
"""

from anomalies.registry import detectors_for


def evaluate_event(event) -> None:
    for detector_class in detectors_for(event.type):
        detector_class().evaluate(None, event)
