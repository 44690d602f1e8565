"""Collections and who may read them: the access rules of one workspace (`WORKSPACE/collections.json`).

Every document belongs to one collection (a label the index stores per document). `shared` is read
by every user; any other collection only by its readers: user names, or `group:NAME` for the members
of a group (groups come from the server's logins, `ui.security.parse_auth`). Writers may also add
documents to it. Each signed-in user has an own collection (`own_collection`) their uploads go to.

A caller without a user (`user=None`: the operator at the shell, or a server without logins)
reads every collection: whoever holds the workspace folder reads its files anyway. A collection
label in the index that this file does not know is readable by nobody but the operator, so a
typo in `--collection` fails closed. The file is re-read when it changes, so `assistant
collections grant` takes effect on a running server at its next request.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from foundation.workspace import atomic_write_json
from index.collections import SHARED, check_name
from index.store import now_iso

FILE = "collections.json"
GROUP = "group:"
OWN_PREFIX = "user-"  # reserved: `user-NAME` is NAME's own collection


class CollectionError(ValueError):
    """A request the rules refuse (unknown collection, reserved name, bad reader); the message says which."""


@dataclass
class CollectionInfo:
    """One collection: who reads it, who may add to it, and (for an own collection) whose it is."""

    name: str
    readers: list[str] = field(default_factory=list)  # "bob", "group:hr"
    writers: list[str] = field(default_factory=list)
    owner: str | None = None
    created_at: str = ""
    documents: int = 0  # filled in by `list` from the index

    @property
    def everyone(self) -> bool:
        return self.name == SHARED


def check_reader(reader: str) -> str:
    """A reader as stored: a user name or `group:NAME`; CollectionError when neither."""
    reader = (reader or "").strip()
    name = reader[len(GROUP):] if reader.startswith(GROUP) else reader
    if not name or any(c.isspace() or c in ":," for c in name):
        raise CollectionError(f"reader {reader!r} is not a user name or group:NAME (no spaces, ':' or ',')")
    return reader


def own_collection(user: str) -> str:
    """The collection a user's uploads go to: `user-NAME` (a hash is added when NAME needs escaping,
    so two users never share one)."""
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", user)[:40]
    if safe != user:
        safe += "-" + hashlib.sha256(user.encode()).hexdigest()[:8]
    return OWN_PREFIX + safe


class Collections:
    """The workspace's collections; `memberships` (user -> groups) is what the server's logins say.

    >>> cols = Collections(Path("workspace"))
    >>> cols.create("hr"); cols.grant("hr", ["group:hr", "carol"])
    >>> cols.readable("bob", groups={"hr"})
    {'shared', 'hr', 'user-bob'}
    """

    def __init__(self, workspace: Path, *, documents: Callable[[], Mapping[str, int]] | None = None):
        self.path = Path(workspace) / FILE
        self.memberships: dict[str, frozenset[str]] = {}
        self._documents = documents  # collection -> document count, from the index
        self._cache: tuple[tuple[int, int], dict[str, CollectionInfo]] | None = None

    # ---- reading -------------------------------------------------------------------------
    def _load(self) -> dict[str, CollectionInfo]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {SHARED: CollectionInfo(SHARED)}
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != stamp:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            infos = {name: CollectionInfo(name, **{k: v for k, v in body.items() if k != "documents"})
                     for name, body in raw.get("collections", {}).items()}
            infos.setdefault(SHARED, CollectionInfo(SHARED))
            self._cache = (stamp, infos)
        return self._cache[1]

    def get(self, name: str) -> CollectionInfo:
        try:
            return self._load()[name]
        except KeyError:
            raise CollectionError(f"no collection {name!r}; create it with `assistant collections create {name}`") from None

    def exists(self, name: str) -> bool:
        return name in self._load()

    def list(self) -> list[CollectionInfo]:
        """Every collection, `shared` first, with its document count; labels the index holds but this
        file does not know are listed too (readable by nobody until created)."""
        infos = dict(self._load())
        counts = dict(self._documents()) if self._documents else {}
        for name in counts:
            infos.setdefault(name, CollectionInfo(name))
        out = [CollectionInfo(**{**asdict(i), "documents": counts.get(i.name, 0)}) for i in infos.values()]
        return sorted(out, key=lambda i: (i.name != SHARED, i.name))

    def groups_of(self, user: str | None, groups: Iterable[str] | None = None) -> frozenset[str]:
        return frozenset(groups) if groups is not None else self.memberships.get(user or "", frozenset())

    def readable(self, user: str | None, groups: Iterable[str] | None = None) -> frozenset[str] | None:
        """The collections `user` may read (None: every one, for the operator / a server without logins)."""
        if user is None:
            return None
        who = self._identities(user, groups)
        names = {SHARED, own_collection(user)}
        names |= {i.name for i in self._load().values() if who & set(i.readers + i.writers) or i.owner == user}
        return frozenset(names)

    def writable(self, user: str | None, name: str, groups: Iterable[str] | None = None) -> bool:
        """Whether `user` may add documents to `name` (their own collection, or one that lists them as writer)."""
        if user is None:
            return True
        if name == own_collection(user):
            return True
        info = self._load().get(name)
        return info is not None and (info.owner == user or bool(self._identities(user, groups) & set(info.writers)))

    def _identities(self, user: str, groups: Iterable[str] | None) -> set[str]:
        return {user, *(GROUP + g for g in self.groups_of(user, groups))}

    def readable_by_anyone(self, name: str) -> bool:
        """Whether any user (not only the operator) may read `name`."""
        return name == SHARED or bool(self.readers_of(name))

    def readers_of(self, name: str) -> list[str]:
        """Who reads `name`, as the Documents tab shows it."""
        if name == SHARED:
            return ["everyone"]
        info = self._load().get(name)
        if info is None:
            return []
        return sorted(set(info.readers + info.writers + ([info.owner] if info.owner else [])))

    # ---- changing ------------------------------------------------------------------------
    def create(self, name: str, *, readers: Iterable[str] = (), writers: Iterable[str] = (),
               owner: str | None = None) -> CollectionInfo:
        name = self._checked(name, own_ok=owner is not None)
        with self._editing() as infos:
            if name in infos:
                raise CollectionError(f"collection {name!r} exists already")
            infos[name] = CollectionInfo(name, sorted({check_reader(r) for r in readers}),
                                         sorted({check_reader(w) for w in writers}), owner, now_iso())
            return infos[name]

    def ensure_own(self, user: str) -> str:
        """The user's own collection, created on first use."""
        name = own_collection(user)
        if not self.exists(name):
            with contextlib.suppress(CollectionError):  # created meanwhile by another request
                self.create(name, owner=user)
        return name

    def grant(self, name: str, readers: Iterable[str], *, write: bool = False) -> CollectionInfo:
        """Add readers (or writers, who read too) to a collection."""
        added = {check_reader(r) for r in readers}
        with self._editing() as infos:
            info = self._existing(infos, name)
            if info.everyone and not write:
                raise CollectionError(f"{SHARED!r} is read by everyone already; grant --write to let someone add to it")
            key = "writers" if write else "readers"
            setattr(info, key, sorted(set(getattr(info, key)) | added))
            return info

    def revoke(self, name: str, readers: Iterable[str]) -> CollectionInfo:
        """Remove readers (and writers) from a collection; answers from then on no longer draw on it for them."""
        gone = {check_reader(r) for r in readers}
        with self._editing() as infos:
            info = self._existing(infos, name)
            unknown = gone - set(info.readers) - set(info.writers)
            if unknown:
                raise CollectionError(f"{', '.join(sorted(unknown))} cannot read {name!r} through a grant "
                                      f"(readers: {', '.join(self.readers_of(name)) or 'none'})")
            info.readers = [r for r in info.readers if r not in gone]
            info.writers = [w for w in info.writers if w not in gone]
            return info

    def delete(self, name: str) -> None:
        """Forget a collection's rules (the caller removes its documents first: see `Assistant.delete_collection`)."""
        if name == SHARED:
            raise CollectionError(f"{SHARED!r} cannot be deleted")
        with self._editing() as infos:
            self._existing(infos, name)
            del infos[name]

    # ---- helpers -------------------------------------------------------------------------
    def _checked(self, name: str, *, own_ok: bool = False) -> str:
        try:
            name = check_name(name)
        except ValueError as exc:
            raise CollectionError(str(exc)) from None
        if name.startswith(OWN_PREFIX) and not own_ok:
            raise CollectionError(f"names starting with {OWN_PREFIX!r} are reserved for users' own collections")
        return name

    def _existing(self, infos: dict[str, CollectionInfo], name: str) -> CollectionInfo:
        if name not in infos:
            raise CollectionError(f"no collection {name!r}; create it with `assistant collections create {name}`")
        return infos[name]

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, CollectionInfo]]:
        """Read, change and atomically rewrite the file, one writer at a time (an flock beside it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(FILE + ".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            self._cache = None
            infos = {n: CollectionInfo(**asdict(i)) for n, i in self._load().items()}
            yield infos
            body = {n: {k: v for k, v in asdict(i).items() if k not in ("name", "documents")}
                    for n, i in sorted(infos.items())}
            atomic_write_json(self.path, {"version": 1, "collections": body})
            self._cache = None
