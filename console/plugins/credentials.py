"""Where backend secrets come from: the OS keyring, an environment variable, a 0600 file.

Secrets live only inside ``pydantic.SecretStr`` (repr/str show ``**********``): Textual's crash
output prints the locals of every frame, so no plain-``str`` secret is ever bound to a name
here. ``get_secret_value()`` is called inline where a header or the keyring call needs it.
A :class:`Credential` records where it came from (for ``doctor``), never the value.
See docs/credentials.md.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from console.logs import known_forms, mask_known, replace_forms
from console.plugins import PluginConfig
from console.ports import Unauthorized

KEYRING_SERVICE = "cd4ml-console"
FILE_NAME = "credentials.toml"
SECRET_KEYS = ("token", "password")
Source = Literal["keyring", "env", "file"]


class CredentialError(Unauthorized):
    """No usable credential, or a credential store the console refuses to use."""


class CredentialOptions(PluginConfig):
    """Config keys of a backend that needs a secret; plugin configs inherit them."""

    credential: str | None = Field(
        default=None, description="name the secret is stored under (default: the plugin name)"
    )
    username: str | None = None
    username_env: str | None = None
    token_env: str | None = None
    credentials_file: Path | None = None
    use_keyring: bool = True
    allow_plaintext_keyring: bool = False

    @field_validator("credentials_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError(
                f"{value} is relative; use an absolute path or ~/... (the console may run "
                "from any folder)"
            )
        return value


class Credential(BaseModel):
    """A secret plus where it was found; ``repr``/``str`` never show the secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: Source
    location: str  # "keyring entry cd4ml-console/NAME in <backend>", "environment variable X",
    # "file /path": said when a peer refuses the credential (never the value)
    secret: SecretStr = Field(repr=False)
    username: str | None = None

    def describe(self) -> str:
        """One line for ``doctor``: which credential, whose, from where (never the value)."""
        who = f" (user {self.username})" if self.username else ""
        return f"credential {self.name!r}{who} from {self.location}"

    def authorization(self, scheme: Literal["basic", "bearer"]) -> str:
        """The ``Authorization`` header value; use it inline, never keep it in a variable."""
        if scheme == "basic":
            return "Basic " + base64.b64encode(
                f"{self.username or ''}:{self.secret.get_secret_value()}".encode()
            ).decode("ascii")
        return "Bearer " + self.secret.get_secret_value()


MIN_ENCODED = 6  # shorter secrets are masked raw only: their encodings match ordinary text


def _encodings(text: SecretStr) -> Iterator[SecretStr]:
    """``text`` as a peer or a header may carry it: URL-encoded, base64(url), hex (each value
    made inline, so that no frame holds a plain copy)."""
    yield SecretStr(quote(text.get_secret_value(), safe=""))
    yield SecretStr(quote_plus(text.get_secret_value()))
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        yield SecretStr(encode(text.get_secret_value().encode()).decode("ascii"))
        yield SecretStr(encode(text.get_secret_value().encode()).decode("ascii").rstrip("="))
    yield SecretStr(text.get_secret_value().encode().hex())
    yield SecretStr(text.get_secret_value().encode().hex().upper())


@functools.lru_cache(maxsize=64)
def _forms(cred: Credential) -> tuple[SecretStr, ...]:
    """The ways ``cred``'s secret can appear in a text: raw, URL-encoded, base64, base64url
    and hex, and the base64 of ``username:secret`` (an echoed Basic header). Cached: every
    error message of a backend is masked with them."""
    forms = [cred.secret]
    if len(cred.secret.get_secret_value()) >= MIN_ENCODED:
        forms += _encodings(cred.secret)
        forms += _encodings(SecretStr(f"{cred.username or ''}:{cred.secret.get_secret_value()}"))
    return tuple(forms)


def _longest_first(forms: Iterable[SecretStr]) -> list[SecretStr]:
    unique = {form.get_secret_value(): form for form in forms if form.get_secret_value()}
    return sorted(unique.values(), key=lambda form: len(form.get_secret_value()), reverse=True)


def redact_secrets(text: str, credentials: Iterable[Credential | None]) -> str:
    """``text`` with every credential's secret masked as ``****`` in each of its forms
    (:func:`_forms`)."""
    forms = [f for cred in credentials if cred is not None for f in _forms(cred)]
    return replace_forms(text, _longest_first(forms))


MAX_KNOWN = 64
_known: list[Credential] = []


def remember(credential: Credential) -> Credential:
    """Mask ``credential`` in every text :func:`mask_known` sees from now on: the console
    masks every secret it has looked up, in whichever backend's text it shows up."""
    # A secret shorter than MIN_ENCODED would mask ordinary words in every message; its own
    # backend still masks it in what it says (redact_secrets).
    if len(credential.secret.get_secret_value()) >= MIN_ENCODED and credential not in _known:
        _known.append(credential)
        del _known[:-MAX_KNOWN]
        known_forms(_longest_first(f for known in _known for f in _forms(known)))
    return credential


def forget_all() -> None:
    """Mask no remembered credential any more (between tests)."""
    _known.clear()
    known_forms([])


@dataclass(frozen=True)
class KeyringStatus:
    """What ``keyring`` resolves to on this machine."""

    backend: str  # dotted class name(s) of the active backend
    usable: bool
    plaintext: bool = False
    reason: str = ""
    active: Any = field(default=None, repr=False, compare=False)  # the backend object


@dataclass(frozen=True)
class Lookup:
    """The outcome of a search: the credential (or None) and what was tried, in order."""

    name: str
    credential: Credential | None
    tried: tuple[str, ...]


def default_credentials_file() -> Path:
    """``credentials.toml`` in the user config dir (next to the user's cd4ml-console.toml)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("cd4ml-console")) / FILE_NAME


def credential_name(options: CredentialOptions, default: str) -> str:
    return options.credential or default


# -- keyring ------------------------------------------------------------------------------


def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_plaintext(backend: object) -> bool:
    """keyrings.alt's file/pyfs backends store secrets readably; keyring rates them < 1."""
    cls = type(backend)
    if "plaintext" in cls.__name__.lower() or cls.__module__.startswith("keyrings.alt"):
        return True
    try:
        priority = float(cls.priority)  # type: ignore[attr-defined]
    except Exception:  # a backend whose priority raises is not viable anyway
        return False
    return priority < 1  # keyring's own threshold for "recommended"


def keyring_status(allow_plaintext: bool = False) -> KeyringStatus:
    """Which keyring backend is active, whether it can be used, and whether it is plaintext."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except Exception as exc:  # keyring is a dependency, but a broken install must not crash
        return KeyringStatus("none", False, reason=f"keyring can not be imported: {exc}")
    try:
        active = keyring.get_keyring()
    except Exception as exc:
        return KeyringStatus("none", False, reason=f"keyring failed to load a backend: {exc}")
    members: list[object] = [active]
    if isinstance(active, chainer.ChainerBackend):  # any member may answer: check them all
        try:
            members = list(active.backends)
        except Exception as exc:
            return KeyringStatus("chainer", False, reason=f"keyring backends failed: {exc}")
    members = [m for m in members if not isinstance(m, fail.Keyring | null.Keyring)]
    label = ", ".join(_class_name(m) for m in members) or _class_name(active)
    if not members:
        return KeyringStatus(label, False, reason=f"no keyring backend is available ({label})")
    plain = [_class_name(m) for m in members if _is_plaintext(m)]
    if plain and not allow_plaintext:
        return KeyringStatus(
            label,
            False,
            plaintext=True,
            reason=f"the keyring backend {', '.join(plain)} stores secrets in plain text; "
            "refused (set allow_plaintext_keyring = true in the backend's config to use it)",
        )
    return KeyringStatus(label, True, plaintext=bool(plain), active=active)


def _from_keyring(name: str, options: CredentialOptions) -> tuple[Credential | None, str]:
    if not options.use_keyring:
        return None, "keyring: disabled (use_keyring = false)"
    status = keyring_status(options.allow_plaintext_keyring)
    if not status.usable:
        return None, f"keyring: {status.reason}"
    try:
        secret = SecretStr(status.active.get_password(KEYRING_SERVICE, name) or "")
    except Exception as exc:  # NoKeyringError, KeyringLocked, D-Bus errors, ...
        return None, f"keyring {status.backend}: {type(exc).__name__}: {exc}"
    if not secret.get_secret_value():
        return None, f"keyring {status.backend}: no entry {KEYRING_SERVICE}/{name}"
    where = f"keyring entry {KEYRING_SERVICE}/{name} in {status.backend}" + (
        " (plaintext, allowed)" if status.plaintext else ""
    )
    return Credential(name=name, source="keyring", location=where, secret=secret), ""


def store_in_keyring(name: str, secret: SecretStr, options: CredentialOptions) -> str:
    """Save ``secret`` in the keyring under ``cd4ml-console``/``name``; return the backend."""
    status = keyring_status(options.allow_plaintext_keyring)
    if not status.usable:
        raise CredentialError(f"can not store {name!r} in the keyring: {status.reason}")
    try:
        status.active.set_password(KEYRING_SERVICE, name, secret.get_secret_value())
    except Exception as exc:
        raise CredentialError(
            f"storing {name!r} in keyring {status.backend} failed: {type(exc).__name__}: {exc}"
        ) from None
    return status.backend


# -- environment --------------------------------------------------------------------------


def _from_env(
    name: str, options: CredentialOptions, env: Mapping[str, str]
) -> tuple[Credential | None, str]:
    var = options.token_env
    if not var:
        return None, "environment: no token_env configured"
    if not env.get(var):
        return None, f"environment variable {var}: not set"
    return (
        Credential(
            name=name,
            source="env",
            location=f"environment variable {var}",
            secret=SecretStr(env.get(var, "")),
        ),
        "",
    )


# -- file ---------------------------------------------------------------------------------


def check_file_mode(path: Path) -> None:
    """Refuse a credentials file others can read or write, or that another user owns."""
    try:
        st = path.stat()
    except OSError as exc:
        raise CredentialError(f"can not read credentials file {path}: {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise CredentialError(
            f"credentials file {path} is accessible by other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it",
            hint=f"run: chmod 600 {path}",
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CredentialError(
            f"credentials file {path} belongs to uid {st.st_uid}, not to you; refusing to use it",
            hint="create your own: cd4ml-console login NAME --file, or chown it",
        )


def _wrapped(entry: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    # Values are read by subscript so no secret string is ever bound to a local name.
    for key in entry:
        if key in SECRET_KEYS and isinstance(entry[key], str):
            yield key, SecretStr(entry[key])
        else:
            yield key, entry[key]


def _secretify(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Parsed TOML -> {name: {key: value}} with every secret wrapped at once."""
    return {
        str(section): dict(_wrapped(table[section]))
        for section in table
        if isinstance(table[section], dict)
    }


def read_credentials_file(path: Path) -> dict[str, dict[str, Any]]:
    """The file's entries with secrets already in SecretStr; checks the mode first."""
    check_file_mode(path)
    problem = ""
    entries: dict[str, dict[str, Any]] = {}
    try:
        # The raw text is never bound to a name in this frame.
        entries = _secretify(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        problem = f"is not valid TOML: {exc}"
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"can not be read: {exc}"
    if problem:  # raised outside the except block: no chained traceback with file contents
        raise CredentialError(f"credentials file {path} {problem}")
    return entries


def _from_file(name: str, options: CredentialOptions, path: Path) -> tuple[Credential | None, str]:
    if not path.exists():
        return None, f"file {path}: does not exist"
    entry = read_credentials_file(path).get(name)
    if entry is None:
        return None, f"file {path}: no [{name}] table"
    unknown = sorted(set(entry) - {*SECRET_KEYS, "username"})
    secrets = [entry[k] for k in SECRET_KEYS if isinstance(entry.get(k), SecretStr)]
    if unknown or len(secrets) != 1:
        raise CredentialError(
            f"credentials file {path}: [{name}] must have exactly one of "
            f"{' or '.join(SECRET_KEYS)} (a string) and optionally username"
            + (f"; unknown key(s): {', '.join(unknown)}" if unknown else ""),
            hint="see docs/credentials.md",
        )
    username = entry.get("username")
    return (
        Credential(
            name=name,
            source="file",
            location=f"file {path}",
            secret=secrets[0],
            username=str(username) if username is not None else None,
        ),
        "",
    )


_TOML_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(0x20), 0x22, 0x5C, 0x7F)}


def _toml_string(secret: SecretStr) -> str:
    """A TOML basic string; control characters, quote and backslash escaped (in C, no locals)."""
    return '"' + secret.get_secret_value().translate(_TOML_ESCAPES) + '"'


def store_in_file(name: str, secret: SecretStr, path: Path, *, username: str | None = None) -> None:
    """Add or replace ``[name]`` in the credentials file, written atomically with mode 0600."""
    entries = read_credentials_file(path) if path.exists() else {}
    entry: dict[str, Any] = {"token": secret}
    if username:
        entry["username"] = username
    entries[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# cd4ml-console credentials; keep mode 0600 (docs/credentials.md)\n")
            for section, values in sorted(entries.items()):
                fh.write(f"\n[{_toml_string(SecretStr(section))}]\n")
                for key, val in values.items():
                    plain = val if isinstance(val, SecretStr) else SecretStr(str(val))
                    fh.write(f"{_toml_string(SecretStr(key))} = {_toml_string(plain)}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CredentialError(f"could not write credentials file {path}: {exc}") from None


# -- lookup -------------------------------------------------------------------------------


def lookup(
    name: str, options: CredentialOptions, *, env: Mapping[str, str] | None = None
) -> Lookup:
    """Search keyring, then the environment variable, then the credentials file.

    A credentials file that is unsafe or malformed raises CredentialError (never skipped).
    """
    env = os.environ if env is None else env
    tried: list[str] = []
    path = options.credentials_file or default_credentials_file()
    for step in ("keyring", "env", "file"):
        if step == "keyring":
            found, note = _from_keyring(name, options)
        elif step == "env":
            found, note = _from_env(name, options, env)
        else:
            found, note = _from_file(name, options, path)
        if found is not None:
            username = (
                options.username
                or found.username
                or (env.get(options.username_env) if options.username_env else None)
            )
            if username != found.username:
                found = found.model_copy(update={"username": username})
            return Lookup(name, remember(found), tuple(tried))
        tried.append(note)
    return Lookup(name, None, tuple(tried))


def require(lookup_result: Lookup) -> Credential:
    """The credential of a lookup, or CredentialError saying where it looked and what to do."""
    if lookup_result.credential is not None:
        return lookup_result.credential
    name = lookup_result.name
    raise CredentialError(
        f"no credential {name!r} found; looked in: " + "; ".join(lookup_result.tried),
        hint=f"run `cd4ml-console login {name}` (docs/credentials.md)",
    )


async def alookup(
    name: str,
    options: CredentialOptions,
    *,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> Lookup:
    """:func:`lookup` off the event loop: a keyring over D-Bus may block."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(lookup, name, options, env=env), timeout)
    except TimeoutError:
        raise CredentialError(
            f"looking up credential {name!r} took longer than {timeout:g}s (keyring blocked?)",
            hint="set use_keyring = false and use the environment variable or the file",
        ) from None


__all__ = [
    "KEYRING_SERVICE",
    "Credential",
    "CredentialError",
    "CredentialOptions",
    "KeyringStatus",
    "Lookup",
    "alookup",
    "check_file_mode",
    "credential_name",
    "default_credentials_file",
    "forget_all",
    "keyring_status",
    "lookup",
    "mask_known",
    "read_credentials_file",
    "redact_secrets",
    "remember",
    "require",
    "store_in_file",
    "store_in_keyring",
]
