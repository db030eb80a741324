"""The failure policy of a batch flow: whether its failed records fail the flow.

Pure, no I/O. Judged once, when every record is settled and the outputs (and dead letters) are
written, so what made it fail is there to read:

- neither `maxFailedRecords` nor `maxFailedRatio` set: records that fail fail nothing, except
  when every record failed (`AllRecordsFailed`; a source with no record fails nothing);
- `maxFailedRecords: n`: more than n failed records fail the flow (`TooManyFailedRecords`);
- `maxFailedRatio: r`: a share of failed records (of the records read) above r fails it too.

Each shard of a batch flow judges its own records.
"""

from __future__ import annotations

from scoring_flow.items import Counters

ALL_FAILED = "AllRecordsFailed"
TOO_MANY = "TooManyFailedRecords"


def verdict(
    counters: Counters,
    *,
    max_records: int | None,
    max_ratio: float | None,
    first: str | None = None,
) -> tuple[str, str] | None:
    """(reason, message) when the flow fails by its policy, else None. `first` is the first
    failed record's reason, quoted in the message."""
    failed, read = counters.records_failed, counters.records_in
    if not failed:
        return None
    why = f" (first: {first})" if first else ""
    if max_records is None and max_ratio is None:
        if failed == read:
            return ALL_FAILED, f"{ALL_FAILED}: all {read} records failed{why}"
        return None
    if max_records is not None and failed > max_records:
        return TOO_MANY, (
            f"{TOO_MANY}: {failed} of {read} records failed, more than maxFailedRecords "
            f"{max_records}{why}"
        )
    if max_ratio is not None and failed / read > max_ratio:
        return TOO_MANY, (
            f"{TOO_MANY}: {failed} of {read} records failed ({failed / read:.1%}), more than "
            f"maxFailedRatio {max_ratio}{why}"
        )
    return None
