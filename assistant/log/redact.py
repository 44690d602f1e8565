"""Scrub personal data and secrets from text before it reaches the log.

Runs when the log is opened with `redact=True` (workspace setting `redact = true`). Matches
are replaced with a typed placeholder (`[EMAIL]`, `[PHONE]`, `[SECRET]`) so a reader can still
tell what kind of thing was there; where a secret sits in a structure (a URL, a header, a
`name = value` line) the structure stays and only the secret goes. A credential is caught by
its own shape (`ghp_...`, a private key block), by the name it is given (`password=`,
`"client_secret":`, `AccountKey=`) or by its neighbours (an AWS secret key next to its key id).
Patterns err on the side of scrubbing a value once it is named as a secret, but leave prose,
paths, versions, dates and code (`token = get_token()`, `password: str`) alone. The list of
shapes covered is in docs/security.md ("What `redact = true` removes").
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

SECRET = "[SECRET]"

# Order matters: secrets first (a key may contain digit runs that look like phone numbers),
# then e-mails, then phone numbers.
_SECRET_PATTERNS = [
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}",  # OpenAI / Anthropic style keys
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",  # Slack webhooks (the path is the secret)
    r"\bglpat-[A-Za-z0-9_\-]{20,}",  # GitLab tokens
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API keys
    r"\bGOCSPX-[A-Za-z0-9_\-]{20,}",  # Google OAuth client secrets
    r"\bya29\.[A-Za-z0-9_\-]{20,}",  # Google OAuth access tokens
    r"(?<![\w/])1//0[A-Za-z0-9_\-]{30,}",  # Google OAuth refresh tokens
    r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe secret and restricted keys
    r"\bwhsec_[A-Za-z0-9+/=]{20,}",  # Stripe webhook signing secrets
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
    r"\bnpm_[A-Za-z0-9]{36}\b",  # npm tokens
    r"\bpypi-AgE[A-Za-z0-9_\-]{40,}",  # PyPI upload tokens
    r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{30,}",  # SendGrid keys
    r"\bdapi[0-9a-f]{32}\b",  # Databricks tokens
    r"\bAGE-SECRET-KEY-1[0-9A-Z]{50,}",  # age private keys
    r"\b\d{8,10}:AA[A-Za-z0-9_\-]{33}\b",  # Telegram bot tokens
    r"(?<![\w~.\-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![\w~\-])",  # Azure AD client secrets
    r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWTs
    r"(?<![A-Za-z0-9])[0-9a-fA-F]{32,}(?![A-Za-z0-9])",  # long hex tokens (md5/sha/api keys)
]
_SECRETS = re.compile("|".join(f"(?:{p})" for p in _SECRET_PATTERNS))

# Private key blocks (PEM, OpenSSH, PGP), also inside JSON strings (escaped "\n"). A block cut
# off before its END line still loses its base64 lines and encryption headers.
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:(?:(?!-----BEGIN)[\s\S])*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:(?:\s|\\[nr])+(?:[A-Za-z0-9+/]{16,}={0,2}"  # its base64 lines, and a short last line:
    r"|[A-Za-z0-9+/]+={0,2}(?=[ \t]*(?:\\[nr]|[\r\n\"]|$))"
    r"|(?:Proc-Type|DEK-Info|Comment|Version):[^\n\\]*))*)"
)
# scheme://user:password@host: the password goes, the rest of the URL stays.
_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*://[^\s:/?#@\[\]]*:)([^\s/?#]+)(@)")
# curl -u user:password, assistant serve --auth user:password.
_USER_PASSWORD_FLAG = re.compile(r"(?<![\w\-])((?:-u|--user|--auth)\s+[^\s:]+:)(\S+)")
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:basic|bearer|token|digest|negotiate|ntlm|sharedkey|apikey)\s+)?)"
    r"([A-Za-z0-9\-._~+/:]{8,}=*)"
)
_BEARER = re.compile(r"(?i)\b((?:bearer|basic)\s+)([A-Za-z0-9\-._~+/]{8,}=*)")

# A name that says its value is a secret, as a whole word or a whole part of a longer name
# (aws_secret_access_key, dbPassword, PGPASSWORD, X-Auth-Token, AccountKey) but not a word
# that merely contains one (max_new_tokens, bypass, compass).
_KEYWORD = (
    r"pass(?:word|wd|phrase|code)?|pwd|secret|token|sig|signature|apikey|client[_-]?secret"
    r"|(?:api|access|secret|private|account|signing|encryption|master|client|auth|app"
    r"|shared[_-]?access|secret[_-]?access)[_-]?key"
    r"|(?:access|refresh|auth|id|session|bearer|api|bot|app|oauth|security)[_-]?token"
    r"|private[_-]?key[_-]?id|secret[_-]?key[_-]?base"
)
_NAME = (
    r"(?:[\w.\-]*[_.\-]|(?-i:[A-Za-z0-9]*[a-z0-9]|[A-Z0-9]+)(?-i:(?=[A-Z])))?"
    rf"(?:{_KEYWORD})"
)
_SECRET_NAME = re.compile(rf"(?i){_NAME}")
# name = value, name: value, "name": "value", name := value, name => value, ?name=value&...
_ASSIGNMENT = re.compile(
    rf"(?i)(?<![\w.\-])(?P<name>{_NAME})(?![\w\-])"
    r"(?P<sep>[\"']?[ \t]*(?::=|=>|=(?!=)|:(?!:))[ \t]*)"
    r"(?:(?P<q>[\"'])(?P<quoted>(?:(?!(?P=q))[^\\\n…]|\\.)+)(?P<close>(?P=q)|(?=…|\n|$))"  # (or cut off)
    r"|(?P<bare>[^\s\"'`&;]+))"
)
_XML_ELEMENT = re.compile(rf"(?i)(<(?P<tag>{_NAME})>)[^<]+(</(?P=tag)>)")
# "the password is Sup3rPgPass", "secret key wJalr...": only a value that looks like a credential.
_PROSE = re.compile(
    r"(?i)\b((?:password|passphrase|passcode|secret(?:[ _-]access)?(?:[ _-]key)?"
    r"|(?:api|access|private)[ _-]key|(?:access|auth|api|bearer|refresh|session)[ _-]token)"
    r"(?:[ \t]*[:=]|[ \t]+(?:is|was))?[ \t]+)([^\s\"'`<>]{6,})"
)
# An AWS secret access key: 40 base64 characters, told apart from other runs by what is near.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")
_AWS_NEIGHBOUR = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|(?i:(?<![a-z])aws(?![a-z])|secret)")

# Values that stand for a secret rather than being one: $VAR, ${VAR}, <password>, {{ secret }},
# ****, KEY:USER, [SECRET]; and the literals and type names code puts after `password:`.
_PLACEHOLDER = re.compile(
    r"\$\{?\w+\}?|%\w+%|<[^<>]*>|\{\{.*\}\}|\*+|x{3,}|X{3,}|\[SECRET\]|\.\.\.|…"
    r"|(?-i:[A-Z][A-Z_:\-]*)|(?i:pass(?:word)?|secret|none|null|nil|true|false|undefined"
    r"|str|string|bytes|int|bool|number|any|optional|secretstr|text|varchar)"
)
_CODE = re.compile(
    r"[A-Za-z_][\w.]*[(\[].*"  # a call or a subscript: getpass(), os.environ["X"]
    r"|(?-i:[a-z_][A-Za-z_]*)(?:\.[A-Za-z_][A-Za-z_]*)+"  # attribute access: settings.api_key, self.token
)
# Tokenizer special tokens and pagination cursors are named "..._token" but are not credentials.
_NOT_SECRET_NAME = re.compile(
    r"(?i)(?:.*[^a-z])?(?:pad|eos|bos|unk|sep|cls|mask|special|start|end|stop|next|page|continuation)[_-]?token"
    r"|(?:old)?pwd"
)
_TRAILING_PUNCTUATION = re.compile(r"[.,:)\]}>]+$")

# A long base64/base64url run: judged by `_token` (mixed case and digits, not a slug or path).
_BASE64 = re.compile(r"(?<![A-Za-z0-9+_\-])[A-Za-z0-9+_\-]{32,}={0,2}")
# The same with "/" (standard base64: Azure keys, AWS secrets): judged by `_slashed_token`.
_BASE64_SLASHED = re.compile(r"(?<![A-Za-z0-9+/=_\-])(?=[A-Za-z0-9+]*/)[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=_\-])")
# Not the user of a URL (https://git@host/...): that is an account name, not an address.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])(?<!//)[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
# International or national numbers with separators: +44 20 7946 0958, (555) 123-4567,
# 555-123-4567, 030 1234567. At least 7 digits so years and versions survive.
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)[\s.\-]?)?\d{2,4}(?:[\s.\-]\d{2,8}){1,4}(?![\w])")


def _mixed_case(text: str) -> bool:
    return any(ch.isupper() for ch in text) and any(ch.islower() for ch in text)


def _credential_like(text: str) -> bool:
    """A word that reads like a credential, not like prose: letters with digits, or long and mixed case."""
    has_digit = any(ch.isdigit() for ch in text)
    has_alpha = any(ch.isalpha() for ch in text)
    return (has_digit and has_alpha) or (len(text) >= 16 and _mixed_case(text))


def _token(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    slug = text.count("-") + text.count("_") > 2  # long-hyphenated-words-2024 are prose
    return SECRET if digits >= 2 and _mixed_case(text) and not slug else text


def _slashed_token(match: re.Match[str]) -> str:
    """Base64 has a "/" about once in 64 characters; a path has one every few characters."""
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    base64ish = "+" in text or text.endswith("=") or text.count("/") * 20 <= len(text)
    return SECRET if digits >= 3 and _mixed_case(text) and base64ish else text


def _aws_secret(match: re.Match[str]) -> str:
    """40 base64 characters near an AWS key id, "aws" or "secret" are the secret access key."""
    text = match.group(0)
    if not _mixed_case(text) or not re.search(r"[0-9+/]", text) or text.count("/") > 4:
        return text
    around = match.string[max(0, match.start() - 120):match.end() + 120]
    return SECRET if _AWS_NEIGHBOUR.search(around) else text


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    has_sep = any(ch in " .-()+" for ch in text)
    # ISO dates (2026-11-28) and dotted versions (1.2.3) are not phone numbers.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) or (
        re.fullmatch(r"\d+(?:\.\d+)+", text) and not re.fullmatch(r"\d{3}\.\d{3}\.\d{4}", text)
    ):
        return text
    return "[PHONE]" if digits >= 7 and has_sep else text


def _kept_value(name: str, value: str) -> bool:
    """Values that are not a secret although named like one: placeholders, literals, code,
    and values an earlier pattern has already replaced."""
    return bool(_PLACEHOLDER.fullmatch(value) or _CODE.fullmatch(value) or len(value) < 3 or SECRET[:-1] in value
                or value.lower() == name.lower().lstrip("-")
                or (re.fullmatch(r"[a-z_]{1,64}", value) and _SECRET_NAME.search(value)))


def _prose_colon(match: re.Match[str], value: str) -> bool:
    """"Reset your password: go to settings" is prose; "password: hunter2" ends its line or looks random."""
    rest = match.string[match.end():]
    return not re.match(r"[ \t]*(?:[,}\]#]|$)", rest, re.M) and not _credential_like(value)


def _assignment(match: re.Match[str]) -> str:
    """`name = value` with a secret's name: keep the name and quotes, drop the value."""
    name, sep, quote = match["name"], match["sep"], match["q"] or ""
    if _NOT_SECRET_NAME.fullmatch(name):
        return match.group(0)
    if quote:
        return match.group(0) if _kept_value(name, match["quoted"]) else f"{name}{sep}{quote}{SECRET}{match['close']}"
    tail = _TRAILING_PUNCTUATION.search(match["bare"])
    value = match["bare"][:tail.start()] if tail else match["bare"]
    kept = _kept_value(name, value) or (":" in sep and "=" not in sep and _prose_colon(match, value))
    return match.group(0) if kept else f"{name}{sep}{SECRET}{tail.group(0) if tail else ''}"


def _prose(match: re.Match[str]) -> str:
    value = _TRAILING_PUNCTUATION.sub("", match.group(2))
    if not _credential_like(value) or _PLACEHOLDER.fullmatch(value) or SECRET[:-1] in value:
        return match.group(0)
    return match.group(1) + SECRET + match.group(2)[len(value):]


def _keep_prefix(pattern: re.Pattern[str], text: str, *, judge: bool = False) -> str:
    """Replace group 2 of each match (the secret), keeping group 1 (its label) and any group 3."""
    def sub(m: re.Match[str]) -> str:
        if _PLACEHOLDER.fullmatch(m.group(2)) or (judge and not _credential_like(m.group(2))):
            return m.group(0)
        return m.group(1) + SECRET + (m.group(3) if m.re.groups >= 3 else "")
    return pattern.sub(sub, text)


def _scrub_secrets(text: str) -> str:
    """Every credential shape, most specific first (a key block before the base64 inside it)."""
    text = _PEM.sub(SECRET, text)
    text = _keep_prefix(_URL_PASSWORD, text)
    text = _keep_prefix(_USER_PASSWORD_FLAG, text)
    text = _keep_prefix(_AUTH_HEADER, text)
    text = _keep_prefix(_BEARER, text, judge=True)
    text = _AWS_SECRET.sub(_aws_secret, text)  # before the key ids it looks for are replaced
    text = _SECRETS.sub(SECRET, text)
    text = _ASSIGNMENT.sub(_assignment, text)
    text = _XML_ELEMENT.sub(lambda m: m.group(1) + SECRET + m.group(3), text)
    text = _PROSE.sub(_prose, text)
    text = _BASE64_SLASHED.sub(_slashed_token, text)
    return _BASE64.sub(_token, text)


def redact(text: str | None) -> str | None:
    """Return `text` with e-mails, phone numbers and secrets replaced by placeholders."""
    if not text:
        return text
    text = _scrub_secrets(text)
    text = _EMAIL.sub("[EMAIL]", text)
    return _PHONE.sub(_phone, text)


# A run of letters and digits: the unit in which a secret is recognised again out of context.
_RUN = re.compile(r"[A-Za-z0-9]+")


def _random_looking(run: str) -> bool:
    """Letters with digits (Sup3rPgPass, hunter22) or camel noise (wJalrXUtnFEMI), not a plain word."""
    upper = sum(ch.isupper() for ch in run)
    has_digit, has_alpha = any(ch.isdigit() for ch in run), any(ch.isalpha() for ch in run)
    return len(run) >= 6 and ((has_digit and has_alpha) or (upper >= 2 and any(ch.islower() for ch in run)))


def secret_runs(text: str | None) -> set[str]:
    """The random-looking runs of letters and digits that `redact` removes from `text` as secrets.

    Context finds a secret once ("my password is hunter22"); the answer may then repeat it bare
    (a decline lists the words no passage mentions: "hunter22"). Remembering the runs lets
    `redact(answer, known=...)` remove them there too."""
    if not text:
        return set()
    kept = set(_RUN.findall(_scrub_secrets(text)))
    return {run for run in _RUN.findall(text) if run not in kept and _random_looking(run)}


def _is_known(run: str, known: frozenset[str]) -> bool:
    return run in known or (len(run) >= 8 and any(len(k) >= 8 and (run in k or k in run) for k in known))


def redact_known(text: str | None, known: frozenset[str]) -> str | None:
    """`redact`, and also any run that is a known secret or a long piece of one (a secret split
    by percent-encoding or cut by an ellipsis)."""
    text = redact(text)
    if not text or not known:
        return text
    return _RUN.sub(lambda m: SECRET if _is_known(m.group(0), known) else m.group(0), text)


class SecretMemory:
    """The secret runs seen in each conversation by this process, for `redact_known`.

    Kept in memory only (the secrets themselves must never be written) and bounded: the least
    recently used conversations are forgotten first. Thread-safe (answers finish on a writer thread)."""

    def __init__(self, conversations: int = 1024, runs_per_conversation: int = 256) -> None:
        self._runs: OrderedDict[str, set[str]] = OrderedDict()
        self._conversation_of: OrderedDict[str, str] = OrderedDict()
        self._limits = (conversations, runs_per_conversation)
        self._lock = threading.Lock()

    def learn(self, conversation_id: str, found: set[str], *message_ids: str) -> None:
        """Remember secret runs (from `secret_runs`), and that `message_ids` belong to the conversation."""
        with self._lock:
            runs = self._runs.setdefault(conversation_id, set())
            runs.update(list(found)[: max(0, self._limits[1] - len(runs))])
            self._runs.move_to_end(conversation_id)
            for mid in message_ids:
                self._conversation_of[mid] = conversation_id
            _trim(self._runs, self._limits[0])
            _trim(self._conversation_of, self._limits[0] * 4)

    def known(self, *, conversation_id: str | None = None, message_id: str | None = None) -> frozenset[str]:
        with self._lock:
            cid = conversation_id or self._conversation_of.get(message_id or "")
            return frozenset(self._runs.get(cid or "", ()))


def _trim(entries: OrderedDict, limit: int) -> None:
    while len(entries) > limit:
        entries.popitem(last=False)


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value (options dicts may carry keys); a value
    under a secret's name ({"api_key": "abc"}) goes whatever it looks like."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def _redact_item(key: Any, value: Any) -> Any:
    named = isinstance(key, str) and _SECRET_NAME.fullmatch(key) and not _NOT_SECRET_NAME.fullmatch(key)
    return SECRET if named and isinstance(value, str) and value else redact_value(value)
