"""Importing Stripe events from files: the same store and queue as webhooks.

Accepted formats, detected from the content: a JSON array of events, a Stripe
list object (`{"object": "list", "data": [...]}`, what `GET /v1/events`
returns), a single event, or JSON lines (one event per line). A malformed
line or item is reported with its position and skipped; the rest is imported.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from itertools import batched
from pathlib import Path

from django.conf import settings
from django.db import transaction

from anomalies.scans import backtest
from tenants.scope import tenant_scope
from webhooks.models import StripeEvent
from webhooks.payloads import NotAStripeEvent, read_event, validate_event
from webhooks.store import store_event
from webhooks.worker import drain

STORE_CHUNK = 500  # events per transaction: one commit per chunk, not per event


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)
    processed: int = 0
    new_ids: list[int] = field(default_factory=list, repr=False)
    first_created: datetime | None = None
    last_created: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "processed": self.processed,
        }


@dataclass(frozen=True, slots=True)
class _Candidate:
    where: dict  # {"file": ..., "line": n} or {"file": ..., "index": n}
    data: object


def _candidates(path: Path, text: str) -> tuple[list[_Candidate], list[dict]]:
    """Split a file into event candidates, reporting what cannot even be parsed."""
    name = str(path)
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
        is_json_document = False
    else:
        is_json_document = True
    if is_json_document:
        if isinstance(whole, list):
            return [_Candidate({"file": name, "index": i}, item) for i, item in enumerate(whole)], []
        if isinstance(whole, dict) and whole.get("object") == "list":
            items = whole.get("data")
            if not isinstance(items, list):
                return [], [{"file": name, "reason": "list object without a 'data' array"}]
            return [_Candidate({"file": name, "index": i}, item) for i, item in enumerate(items)], []
        if isinstance(whole, dict):
            return [_Candidate({"file": name, "index": 0}, whole)], []
        # A bare number or string is valid JSON but no events; fall through to lines.
    candidates, rejected = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            candidates.append(_Candidate({"file": name, "line": line_number}, json.loads(line)))
        except ValueError as exc:
            rejected.append({"file": name, "line": line_number, "reason": f"invalid JSON: {exc.msg}"})
    return candidates, rejected


def import_files(tenant, paths: list[Path], process: bool = True) -> ImportReport:
    report = ImportReport()
    with tenant_scope(tenant):
        for path in paths:
            _import_file(tenant, Path(path), report)
        if process and report.new_ids:
            for chunk in batched(report.new_ids, settings.BILLINGWATCH_WORKER_BATCH_SIZE):
                report.processed += drain(only_ids=list(chunk))
            # The periodic rules over the imported span, as if it had been live.
            backtest(tenant, report.first_created, report.last_created)
    return report


def _import_file(tenant, path: Path, report: ImportReport) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.rejected.append({"file": str(path), "reason": f"cannot read file: {exc}"})
        return
    candidates, rejected = _candidates(path, text)
    report.rejected.extend(rejected)
    for chunk in batched(candidates, STORE_CHUNK):
        with transaction.atomic():
            for candidate in chunk:
                _store_candidate(tenant, candidate, report)


def _store_candidate(tenant, candidate: _Candidate, report: ImportReport) -> None:
    try:
        validate_event(candidate.data)
    except NotAStripeEvent as exc:
        report.rejected.append({**candidate.where, "reason": str(exc)})
        return
    facts = read_event(candidate.data)
    new_id = store_event(
        tenant=tenant,
        endpoint=None,
        facts=facts,
        payload_json=json.dumps(candidate.data, separators=(",", ":")),
        source=StripeEvent.Source.IMPORT,
    )
    if new_id is None:
        report.duplicates += 1
    else:
        report.stored += 1
        report.new_ids.append(new_id)
        report.first_created = min(report.first_created or facts.created, facts.created)
        report.last_created = max(report.last_created or facts.created, facts.created)
