"""Who may use the server and what they may put on it: logins, API keys and upload rules.

Kept apart from the app so the rules can be read (and tested) in one place: the chat page,
the Gradio endpoints and the /v1 API all go through these functions.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from foundation.formats import SUPPORTED_SUFFIXES

UPLOADS_DIR = "uploads"
MIN_API_KEY_CHARS = 16  # with 5 guesses a minute per address, a random key this long is out of reach
KEYGEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
DEFAULT_MAX_UPLOAD_MB = 20
# What the document index can read; anything else is refused before it touches the workspace.
DEFAULT_UPLOAD_TYPES = SUPPORTED_SUFFIXES


class UploadRejected(ValueError):
    """An upload that breaks a rule (name, size or type); the message says which and why."""


class AuthConfigError(ValueError):
    """Credentials or sharing settings that would leave the server open or unusable."""


@dataclass
class UploadPolicy:
    """Where uploads go and what is accepted. `max_bytes` also bounds Gradio's own upload route."""

    root: Path
    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    allowed_types: tuple[str, ...] = DEFAULT_UPLOAD_TYPES

    @classmethod
    def for_workspace(cls, workspace: Path, **kw) -> "UploadPolicy":
        return cls(root=(Path(workspace) / UPLOADS_DIR).resolve(), **kw)


def safe_filename(name: str) -> str:
    """The last path component of `name`, reduced to a harmless file name.

    Directory parts (`../`, `C:\\`, absolute paths) are dropped rather than refused so a browser
    that sends a full client path still works; what is left may not start with a dot.
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name or ""))[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    base = re.sub(r"\.{2,}", ".", base)
    if not base or base in {".", ".."}:
        raise UploadRejected(f"file name {name!r} has nothing usable once its directory parts are removed")
    return base[:180]


def save_upload(src: str | Path, orig_name: str | None, policy: UploadPolicy) -> Path:
    """Copy one uploaded file into the uploads folder after checking its name, type and size.

    Returns the destination (always inside `policy.root`). An existing file of the same name is
    replaced atomically, so re-uploading a corrected document updates it in the index.
    """
    src = Path(src)
    name = safe_filename(orig_name or src.name)
    suffix = Path(name).suffix.lower()
    if suffix not in policy.allowed_types:
        raise UploadRejected(f"{name}: type {suffix or '(none)'} is not accepted; allowed: {' '.join(policy.allowed_types)}")
    size = src.stat().st_size
    if size > policy.max_bytes:
        raise UploadRejected(f"{name}: {size / 1e6:.1f} MB is over the {policy.max_bytes / 1e6:.1f} MB upload limit")
    policy.root.mkdir(parents=True, exist_ok=True)
    dest = (policy.root / name).resolve()
    if dest.parent != policy.root:  # belt and braces: safe_filename already removed separators
        raise UploadRejected(f"{orig_name!r} would be written outside {policy.root}")
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def discard_upload(path: str | Path, root: str | Path) -> bool:
    """Delete a refused or unreadable upload, but only a file inside `root` (never anything else).

    Gradio keeps each upload in a folder of its own; that folder goes too once it is empty.
    """
    p = Path(path)
    if not p.is_file() or not inside(p, root) or Path(root).resolve() == p.resolve():
        return False
    p.unlink(missing_ok=True)
    parent = p.resolve().parent
    try:
        if parent != Path(root).resolve() and inside(parent, root) and not any(parent.iterdir()):
            parent.rmdir()
    except OSError:  # another upload landed there meanwhile: the folder stays
        pass
    return True


def inside(path: str | Path, root: str | Path) -> bool:
    """True when `path` (after resolving links and `..`) is `root` or below it."""
    p, r = Path(path).resolve(), Path(root).resolve()
    return p == r or r in p.parents


# ---- logins -------------------------------------------------------------------------------

def parse_auth(auth: Iterable[str | tuple] | None = None, auth_file: str | Path | None = None) -> list[tuple[str, str]]:
    """Logins from `USER:PASS[:GROUPS]` strings, (user, pass[, groups]) tuples and/or a credentials file.

    The file holds one `user:password[:group,group]` per line; blank lines and `#` comments are ignored.
    """
    return [(u, p) for u, p, _ in parse_logins(auth, auth_file)]


def parse_groups(auth: Iterable[str | tuple] | None = None, auth_file: str | Path | None = None) -> dict[str, frozenset[str]]:
    """user -> the groups their login line names (collections are granted to `group:NAME`)."""
    return {u: g for u, _, g in parse_logins(auth, auth_file) if g}


def parse_logins(auth: Iterable[str | tuple] | None = None,
                 auth_file: str | Path | None = None) -> list[tuple[str, str, frozenset[str]]]:
    """(user, password, groups) per login, from `--auth` values and the credentials file."""
    logins = [_login(item, "--auth") for item in auth or []]
    if auth_file:
        path = Path(auth_file)
        if not path.is_file():
            raise AuthConfigError(f"credentials file {path} does not exist")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                logins.append(_login(line, f"{path}:{n}"))
    users = [u for u, _, _ in logins]
    dupes = sorted({u for u in users if users.count(u) > 1})
    if dupes:
        raise AuthConfigError(f"user(s) listed twice: {', '.join(dupes)}")
    return logins


_GROUPS = re.compile(r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")


def _login(item: str | tuple, where: str) -> tuple[str, str, frozenset[str]]:
    """`user:password` or `user:password:g1,g2`. With two colons or more the part after the last one
    is the group list, so a password that holds ':' is written with a trailing ':' (no groups)."""
    if isinstance(item, (tuple, list)):
        user, pw, *rest = item
        groups = [g for g in (rest[0] if rest else ()) if g]
    else:
        user, sep, pw = str(item).partition(":")
        if not sep:
            raise AuthConfigError(f"{where}: expected USER:PASS, got {str(item)[:40]!r}")
        groups = []
        if ":" in pw:
            pw, _, listed = pw.rpartition(":")
            if listed and not _GROUPS.match(listed):
                raise AuthConfigError(f"{where}: the part after the last ':' is read as a group list (g1,g2 of letters, "
                                      "digits, '_', '.', '-'); end the line with ':' if the password itself holds ':'")
            groups = [g for g in listed.split(",") if g]
    user, pw = str(user).strip(), str(pw)
    if not user or not pw:
        raise AuthConfigError(f"{where}: user and password must both be non-empty")
    return user, pw, frozenset(groups)


def check_login(pairs: list[tuple[str, str]], user: str, password: str) -> bool:
    """Constant-time comparison so timing does not reveal which users exist."""
    ok = False
    for u, p in pairs:
        ok |= secrets.compare_digest(u.encode(), (user or "").encode()) & secrets.compare_digest(p.encode(), (password or "").encode())
    return bool(ok)


def parse_api_keys(api_keys: Iterable[str] | None = None, env: dict[str, str] | None = None,
                   keys_file: str | Path | None = None) -> dict[str, str]:
    """API keys for /v1, each mapped to the user it acts as: {key: user}.

    Entries are `KEY:USER` (or a bare `KEY`, which acts as its own user `api-<hash>`), from the
    argument, `ASSISTANT_API_KEYS` (comma separated) and a keys file (one entry per line, `#`
    comments). The user is who owns the conversations the key starts, exactly like a login.
    Keys shorter than MIN_API_KEY_CHARS are refused: the server would start, but guessable.
    """
    env = os.environ if env is None else env
    entries = [(k, "--api-key") for k in (api_keys or []) if k and k.strip()]
    entries += [(k, "ASSISTANT_API_KEYS") for k in env.get("ASSISTANT_API_KEYS", "").split(",") if k.strip()]
    if keys_file:
        path = Path(keys_file)
        if not path.is_file():
            raise AuthConfigError(f"API keys file {path} does not exist")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() and not line.strip().startswith("#"):
                entries.append((line, f"{path}:{n}"))
    keys: dict[str, str] = {}
    for entry, where in entries:
        key, user = _key_user(entry.strip(), where)
        if keys.get(key, user) != user:
            raise AuthConfigError(f"{where}: this API key is already given to user {keys[key]!r}")
        keys[key] = user
    return keys


def _key_user(entry: str, where: str) -> tuple[str, str]:
    key, sep, user = entry.rpartition(":")
    if not sep:  # a bare key: its own user, named without revealing the key
        key, user = entry, "api-" + hashlib.sha256(entry.encode()).hexdigest()[:8]
    key, user = key.strip(), user.strip()
    if not key or not user or any(c.isspace() for c in key):
        raise AuthConfigError(f"{where}: expected KEY:USER (a key without spaces), got {entry[:40]!r}")
    if len(key) < MIN_API_KEY_CHARS:  # the key itself is not echoed: it may be a real one, mistyped
        whose = f"the API key for {user!r}" if sep else "an API key"
        raise AuthConfigError(f"{where}: {whose} is too short (length {len(key)}); use at least {MIN_API_KEY_CHARS} "
                              f"random characters. Generate one with: {KEYGEN}")
    return key, user


def api_key_user(keys: dict[str, str], header: str | None) -> str | None:
    """The user whose key `Authorization: Bearer KEY` names, or None (no, or a wrong, key)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    found = None
    for key, user in keys.items():  # compare with every key so timing does not tell which matched
        if secrets.compare_digest(token.encode(), key.encode()):
            found = user
    return found


def check_api_key(keys: dict[str, str] | list[str], header: str | None) -> bool:
    """True when `Authorization: Bearer KEY` names one of `keys`."""
    return api_key_user(keys if isinstance(keys, dict) else dict.fromkeys(keys, ""), header) is not None


@dataclass
class AccessPolicy:
    """The resolved access rules for one server."""

    logins: list[tuple[str, str]] = field(default_factory=list)
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> the user it acts as
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # user -> groups, from the logins

    @property
    def auth_on(self) -> bool:
        return bool(self.logins)

    @property
    def api_needs_key(self) -> bool:
        """/v1 requires a bearer key whenever logins or keys are configured."""
        return self.auth_on or bool(self.api_keys)


def resolve_access(*, auth=None, auth_file=None, api_keys=None, api_keys_file=None, share=False,
                   allow_public_share=False, env: dict[str, str] | None = None) -> AccessPolicy:
    """Check the combination of settings and refuse the ones that would expose the documents."""
    logins = parse_logins(auth, auth_file)
    policy = AccessPolicy([(u, p) for u, p, _ in logins], parse_api_keys(api_keys, env, api_keys_file),
                          {u: g for u, _, g in logins if g})
    if share and not policy.auth_on and not allow_public_share:
        raise AuthConfigError(
            "refusing to share without authentication: anyone with the link could read your documents. "
            "Add --auth USER:PASS (or an --auth-file), or pass --allow-public-share to share anyway."
        )
    return policy


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def exposure_warnings(host: str, port: int, access: AccessPolicy, share: bool = False) -> list[str]:
    """What an open server exposes, said plainly at start-up: who can reach it and what they can do.

    Without sign-in every request acts as no user, which reads every collection (see docs/security.md).
    """
    warnings = []
    if host not in LOOPBACK_HOSTS and not access.auth_on:
        api = "" if access.api_keys else " and call /v1 without a key"
        warnings.append(f"WARNING: no sign-in required: anyone who can reach {host}:{port} on this network can read "
                        f"every ingested document, upload new ones{api}. Add --auth USER:PASS (or --auth-file).")
    if share and not access.auth_on:
        warnings.append("WARNING: public share link without sign-in: anyone with the link can read every ingested document.")
    return warnings
