"""A deterministic simulator of a Stripe account's webhook events, with labelled anomalies.

It feeds the detection benchmark and `manage.py simulate`: normal traffic that
stays clearly inside every detector's default thresholds, plus injections that
clearly cross them. Entry point: `simulate(seed, days, end, customers, inject,
livemode) -> (events, labels)`; see stream.py for the label format.
"""

from anomalies.simulation.injections import LIVE_ONLY, SimulationError
from anomalies.simulation.stream import DEFAULT_CUSTOMERS, INJECTABLE, simulate, to_jsonl

__all__ = ["DEFAULT_CUSTOMERS", "INJECTABLE", "LIVE_ONLY", "SimulationError", "simulate", "to_jsonl"]
