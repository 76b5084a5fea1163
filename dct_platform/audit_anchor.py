"""Signed checkpoints that anchor the audit chain outside the database.

A hash chain kept in the database proves nothing against whoever can write the database:
they can rewrite an entry and recompute every hash after it, or delete the tail and roll
the chain head back. So, at regular intervals, the chain's position (sequence number and
hash of its newest entry) is signed with a key the database never holds (HMAC-SHA256, key
from `AUDIT_SIGNING_KEY` or a file in the instance folder) and appended to a file the app
only ever appends to; administrators receive each new checkpoint by mail as a second copy.
Verification then checks that every checkpointed entry is still there with the same hash:
a rewrite or a truncated tail is named even when the chain itself re-verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform.models.audit import AuditChainHead, AuditEntry

_FORMAT = "dct-audit-checkpoint-v1"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    entry_hash: str
    signed_at: datetime
    mac: str

    def line(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "entry_hash": self.entry_hash,
                "signed_at": self.signed_at.isoformat(),
                "mac": self.mac,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class AnchorProblem:
    seq: int | None
    problem: str


class CheckpointStore:
    """The append-only checkpoint file and the key that signs its lines."""

    def __init__(self, path: Path, key: str | None, key_file: Path | None = None) -> None:
        self.path = path
        self._key = key
        self._key_file = key_file

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CheckpointStore:
        return cls(
            Path(config["AUDIT_CHECKPOINT_FILE"]),
            config.get("AUDIT_SIGNING_KEY"),
            Path(config["AUDIT_SIGNING_KEY_FILE"]),
        )

    def _signing_key(self, create: bool) -> bytes | None:
        if self._key:
            return self._key.encode()
        if self._key_file is None:
            return None
        if not self._key_file.exists():
            if not create:
                return None
            self._key_file.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes creating the key at once must not end with two keys.
            try:
                fd = os.open(self._key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
        return self._key_file.read_text().strip().encode()

    @staticmethod
    def _mac(key: bytes, seq: int, entry_hash: str, signed_at: datetime) -> str:
        message = f"{_FORMAT}|{seq}|{entry_hash}|{signed_at.isoformat()}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def read(self) -> tuple[list[Checkpoint], list[AnchorProblem]]:
        """The checkpoints whose signature holds, and a problem for each line that does not."""
        if not self.path.exists():
            return [], []
        key = self._signing_key(create=False)
        if key is None:
            return [], [AnchorProblem(None, "the audit signing key is missing")]
        checkpoints, problems = [], []
        for number, raw in enumerate(self.path.read_text().splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                cp = Checkpoint(
                    int(data["seq"]),
                    str(data["entry_hash"]),
                    datetime.fromisoformat(data["signed_at"]),
                    str(data["mac"]),
                )
            except (ValueError, KeyError, TypeError):
                problems.append(AnchorProblem(None, f"checkpoint line {number} is unreadable"))
                continue
            expected = self._mac(key, cp.seq, cp.entry_hash, cp.signed_at)
            if not hmac.compare_digest(expected, cp.mac):
                problems.append(
                    AnchorProblem(cp.seq, f"checkpoint line {number} has an invalid signature")
                )
                continue
            checkpoints.append(cp)
        return checkpoints, problems

    def append(self, session: Session, now: datetime) -> Checkpoint | None:
        """Sign the chain's current position; None when it has not moved since the last one."""
        head = session.execute(
            select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(AuditChainHead.id == 1)
        ).one_or_none()
        if head is None or head.last_seq == 0:
            return None
        existing, _ = self.read()
        if existing and existing[-1].seq >= head.last_seq:
            return None
        key = self._signing_key(create=True)
        assert key is not None
        checkpoint = Checkpoint(
            head.last_seq, head.last_hash, now, self._mac(key, head.last_seq, head.last_hash, now)
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write of one line with O_APPEND: never interleaved, never overwriting.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (checkpoint.line() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return checkpoint


def check_against_checkpoints(
    session: Session, store: CheckpointStore, last_seq: int
) -> AnchorProblem | None:
    """The first way the stored trail differs from what was signed, or None."""
    checkpoints, problems = store.read()
    if problems:
        return problems[0]
    if not checkpoints:
        return None
    stored = dict(
        session.execute(
            select(AuditEntry.seq, AuditEntry.entry_hash).where(
                AuditEntry.seq.in_([cp.seq for cp in checkpoints])
            )
        ).all()
    )
    for cp in checkpoints:
        when = cp.signed_at.isoformat(timespec="seconds")
        if cp.seq > last_seq or cp.seq not in stored:
            return AnchorProblem(
                cp.seq,
                f"entries up to {cp.seq} were signed at {when}, but the trail now ends at "
                f"{last_seq}: entries were removed",
            )
        if stored[cp.seq] != cp.entry_hash:
            return AnchorProblem(
                cp.seq,
                f"entry {cp.seq} differs from the checkpoint signed at {when}: the trail "
                "was rewritten",
            )
    return None
