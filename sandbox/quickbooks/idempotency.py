"""``?requestid=`` replay: the same write sent twice is answered from memory, not performed twice.

Notes §2.5 (Intuit blog 2015-04-06): a request id is unique per realm; a repeat "sends the
same response as it did for the original request" with no state change. Kept here: status,
media type and body bytes, replayed verbatim (the original ``time`` too; only ``intuit_tid``
is new). Not documented by Intuit, so chosen here: entries never expire while the emulator
runs, the body of the repeat is not compared, and only successful (HTTP 200) answers are
remembered unless ``replay_faults`` is on — a rejected write may be corrected and retried.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REQUEST_ID = 50  # notes §2.5: ≤ 50 chars (batch ≤ 36)
MAX_BATCH_REQUEST_ID = 36
MAX_BID = 10  # each bId of a batch sent with a requestid (notes §2.2, S-REQID)


@dataclass(frozen=True)
class Stored:
    status: int
    media_type: str
    body: bytes


class ReplayStore:
    """Remembered answers keyed by (realm, requestid, batch bIds)."""

    def __init__(self, replay_faults: bool = False):
        self.replay_faults = replay_faults
        self._answers: dict[tuple, Stored] = {}

    @staticmethod
    def key(realm: str, request_id: str, bids: tuple[str, ...] = ()) -> tuple:
        """For batch, every ``bId`` must match too (notes §2.2)."""
        return (realm, request_id, bids)

    def get(self, key: tuple) -> Stored | None:
        return self._answers.get(key)

    def put(self, key: tuple, status: int, media_type: str, body: bytes) -> None:
        if status == 200 or (self.replay_faults and 400 <= status < 500 and status not in (401, 403, 429)):
            self._answers[key] = Stored(status, media_type, body)

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)
