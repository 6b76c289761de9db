"""HTTP plumbing shared by the HTTP backend plugins: one ``httpx.AsyncClient`` per backend, a
timeout on every call, reads retried at most 3 times within 10 s, mutations sent exactly once,
rate limits honoured, and every failure turned into a console.ports error that names the URL
(never a secret). Plugins import it from the core they already depend on.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx

from console.logs import excerpt as excerpt  # re-exported: a plugin fits a peer's text with it
from console.plugins.credentials import Credential, redact_secrets
from console.ports import (
    BackendError,
    Conflict,
    InvalidResponse,
    NotFound,
    Unauthorized,
    Unreachable,
)

READ_RETRIES = 3
"""A read is tried once and retried at most this many times ..."""
RETRY_WITHIN = 10.0
"""... and no retry starts later than this many seconds after the first try."""
BACKOFF = (0.25, 0.75, 2.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_MESSAGE = 200
MAX_BODY = 32 << 20  # an API page is KBs to a few MB; anything near this is not one
monotonic = time.monotonic  # module attributes so tests can drive time
sleep = asyncio.sleep
wall_clock = time.time

CredentialSource = Callable[[], Awaitable[Credential | None]]


def safe_url(url: str | httpx.URL) -> str:
    """``url`` without user info and query string, fit for messages and logs."""
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"
    if not parsed.scheme or not parsed.host:
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    host = parsed.host
    host = f"[{host}]" if ":" in host else host
    path = parsed.raw_path.decode("ascii", "replace").split("?", 1)[0]  # keeps %2F as sent
    path = "" if path == "/" else path
    return f"{parsed.scheme}://{host}{port}{path}"


def api_message(resp: httpx.Response, mask_also: Callable[[str], str] = str) -> str:
    """The server's own explanation of an error response as one line ("" when there is none):
    the ``message`` of a JSON body, else the text of the body (an HTML page's words), masked
    (console.logs.mask, then ``mask_also``) before it is cut to MAX_MESSAGE characters."""
    try:
        doc = resp.json()
    except ValueError:
        return excerpt(resp.text, MAX_MESSAGE, mask_also=mask_also)
    if isinstance(doc, dict):
        for key in ("message", "error", "error_description"):
            value = doc.get(key)
            if isinstance(value, str) and value.strip():
                return excerpt(value, MAX_MESSAGE, mask_also=mask_also)
            if isinstance(value, dict | list) and value:
                return excerpt(str(value), MAX_MESSAGE, mask_also=mask_also)
    return ""


def _epoch_header(value: str | None) -> float | None:
    return float(value) if value is not None and value.strip().isdigit() else None


def retry_after(resp: httpx.Response, now: float) -> float | None:
    """Seconds the ``Retry-After`` header asks for (delta seconds or an HTTP date)."""
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _rate_headers(resp: httpx.Response) -> tuple[str | None, float | None]:
    """(remaining, reset epoch) from GitHub's ``x-ratelimit-*`` or the IETF ``ratelimit-*``."""
    h = resp.headers
    remaining = h.get("x-ratelimit-remaining", h.get("ratelimit-remaining"))
    reset = _epoch_header(h.get("x-ratelimit-reset", h.get("ratelimit-reset")))
    return remaining, reset


def rate_limit_wait(resp: httpx.Response, now: float) -> float | None:
    """Seconds until a request may succeed when ``resp`` reports an exhausted rate limit;
    None when the response is not about a rate limit."""
    if resp.status_code not in (403, 429):
        return None
    asked = retry_after(resp, now)
    if asked is not None:
        return asked
    remaining, reset = _rate_headers(resp)
    if remaining is not None and remaining.strip() == "0" and reset is not None:
        return max(0.0, reset - now)
    if resp.status_code == 429 or "rate limit" in api_message(resp).lower():
        return 60.0  # a secondary limit without headers: GitHub asks for at least a minute
    return None


class CredentialAuth(httpx.Auth):
    """Puts the credential in each request as it is sent; no plain copy is kept anywhere."""

    def __init__(
        self,
        credential: Credential,
        scheme: Literal["bearer", "basic"] = "bearer",
        header: str = "Authorization",
    ) -> None:
        self.credential = credential
        self.scheme: Literal["bearer", "basic"] = scheme
        self.header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.header.lower() == "authorization":
            request.headers["Authorization"] = self.credential.authorization(self.scheme)
        else:
            request.headers[self.header] = self.credential.secret.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return f"CredentialAuth({self.credential.describe()})"


class BodyTooLarge(Exception):
    """An answer larger than the limit; ``size`` is how much was seen (or declared)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"body of {size} bytes or more")
        self.size = size


async def fetch_bounded(
    client: httpx.AsyncClient, request: httpx.Request, auth: Any, limit: int | None = None
) -> httpx.Response:
    """Send ``request`` and read its body, refusing one larger than ``limit`` (MAX_BODY) with
    BodyTooLarge: a broken proxy or a wrong URL must not fill the memory of the console."""
    limit = MAX_BODY if limit is None else limit
    resp = await client.send(request, auth=auth, stream=True)
    try:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(size)
            chunks.append(chunk)
    finally:
        await resp.aclose()
    headers = [(k, v) for k, v in resp.headers.multi_items() if k != "content-encoding"]
    return httpx.Response(
        resp.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=request,
        extensions=resp.extensions,
    )


class _TooLate(Exception):
    """A retry that got its turn to be sent after the retry window."""


class HttpApi:
    """An HTTP API seen by one backend: requests, retries and error mapping."""

    def __init__(
        self,
        *,
        backend: str,
        base_url: str,
        timeout: float,
        credential: CredentialSource | None = None,
        scheme: Literal["bearer", "basic"] = "bearer",
        auth_header: str = "Authorization",
        headers: Mapping[str, str] | None = None,
        max_connections: int = 10,
        auth_hint: str = "check the token",
        forbidden_hint: str = "the token lacks a permission",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self.safe_base = safe_url(self.base_url)
        self.timeout = timeout
        self.auth_hint = auth_hint
        self.forbidden_hint = forbidden_hint
        self._credential_source = credential
        self._scheme: Literal["bearer", "basic"] = scheme
        self._auth_header = auth_header
        self._auth: CredentialAuth | None = None
        self._also_secret: list[Credential] = []
        self._auth_lock = asyncio.Lock()
        self._blocked_until = 0.0  # wall-clock epoch until which the rate limit is exhausted
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers=dict(headers or {}),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,  # tests: an httpx.MockTransport
        )
        # The requests in flight to the API's host: a request waiting for one of these has not
        # been sent, so its time has not begun (httpx's pool would count the wait against it).
        self._slots = asyncio.Semaphore(max_connections)

    # -- credentials --------------------------------------------------------------------

    async def credential(self) -> Credential | None:
        """The credential in use (looked up once, again after a 401)."""
        auth = await self._get_auth()
        return auth.credential if auth is not None else None

    async def _get_auth(self) -> CredentialAuth | None:
        if self._credential_source is None:
            return None
        async with self._auth_lock:
            if self._auth is None:
                try:
                    found = await self._credential_source()
                except BackendError as exc:
                    exc.backend = exc.backend or self.backend
                    raise
                if found is not None:
                    self._auth = CredentialAuth(found, self._scheme, self._auth_header)
            return self._auth

    def keep_secret(self, credential: Credential) -> None:
        """Also mask ``credential`` (sent in a body, e.g. a trigger token) in every message."""
        if credential not in self._also_secret:
            self._also_secret.append(credential)

    def explain(self, resp: httpx.Response) -> str:
        """The peer's one-line explanation in ``resp``, masked, then cut (:func:`api_message`)."""
        return api_message(resp, self._redact)

    def _sent(self) -> str:
        """Which credential the requests carry and where it came from (never its value)."""
        auth = self._auth
        return auth.credential.describe() if auth is not None else "no credential"

    def _redact(self, text: str) -> str:
        auth = self._auth
        return redact_secrets(
            text, [auth.credential if auth is not None else None, *self._also_secret]
        )

    # -- URLs ---------------------------------------------------------------------------

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the API's own scheme/host/port (credentials go nowhere else)."""
        try:
            a, b = httpx.URL(self.base_url), httpx.URL(url)
        except httpx.InvalidURL:
            return False
        return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)

    def where(self, path: str) -> str:
        """``path`` (relative to the API or absolute) as a URL fit for a message."""
        return safe_url(path if "://" in path else self.base_url + "/" + path.lstrip("/"))

    # -- requests -----------------------------------------------------------------------

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET ``path``; transient failures are retried (at most 3 times within 10 s of the
        first try's send)."""
        sent: list[float] = []
        attempt = 0
        last: BackendError | None = None
        while True:
            try:
                failure, wait = await self._try_read(path, params, headers, attempt, sent)
            except _TooLate:  # the retry's turn came after the window: the last failure stands
                assert last is not None
                raise last from None
            if isinstance(failure, httpx.Response):
                return failure
            tries = attempt + 1
            failure.message += f" (tried {tries} times)" if tries > 1 else ""
            last = failure
            late = monotonic() - (sent[0] if sent else monotonic()) + wait > RETRY_WITHIN
            if attempt >= READ_RETRIES or late:
                raise failure
            await sleep(wait)
            attempt += 1

    async def _try_read(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        attempt: int,
        sent: list[float] | None = None,
    ) -> tuple[httpx.Response | BackendError, float]:
        """One try: the response, or the error and how long to wait before trying again."""
        attempt_wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        blocked = self._blocked_until - wall_clock()
        if blocked > 0:
            return self._limit_error(path, blocked), blocked
        try:
            resp = await self._send("GET", path, params=params, headers=headers, sent=sent)
        except httpx.TransportError as exc:
            return self._transport_error("GET", path, exc), attempt_wait
        if resp.is_success:
            return resp, 0.0
        now = wall_clock()
        limited = rate_limit_wait(resp, now)
        if limited is not None:
            return self._rate_limited(path, resp, limited), limited
        if resp.status_code in RETRY_STATUSES:
            asked = retry_after(resp, now) or 0.0
            return self._status_error("GET", path, resp), max(attempt_wait, asked)
        raise self._status_error("GET", path, resp)

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        authenticate: bool = True,
        body_credential: Credential | None = None,
    ) -> httpx.Response:
        """A mutation: sent exactly once, never retried; a non-2xx answer raises.
        ``authenticate=False`` sends it without the backend's credential (the body carries
        its own, ``body_credential``, e.g. a GitLab trigger token: named when refused)."""
        self._check_blocked(path)
        try:
            resp = await self._send(
                method, path, json=json, data=data, params=params, authenticate=authenticate
            )
        except httpx.TransportError as exc:
            err = self._transport_error(method, path, exc)
            if not isinstance(exc, httpx.ConnectError):
                err.message += "; it may or may not have taken effect"
            raise err from None
        if resp.is_success:
            return resp
        limited = rate_limit_wait(resp, wall_clock())
        if limited is not None:
            raise self._rate_limited(path, resp, limited)
        sent = body_credential.describe() if body_credential else None
        raise self._status_error(method, path, resp, sent if sent or authenticate else "none")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        authenticate: bool = True,
        sent: list[float] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        auth = await self._get_auth() if authenticate else None
        request = self.client.build_request(method, path, **kwargs)
        # wait_for bounds the whole exchange; httpx's timeout bounds each phase of it. Both
        # start once the request has a slot: waiting for one is not the peer's time.
        try:
            async with self._slots:
                if sent is not None and not sent:
                    sent.append(monotonic())
                elif sent and monotonic() - sent[0] > RETRY_WITHIN:
                    raise _TooLate  # a retry waited for its turn past the window: not sent
                resp = await asyncio.wait_for(
                    self._bounded(request, auth or httpx.USE_CLIENT_DEFAULT), self.timeout * 2 + 1
                )
        except TimeoutError:
            raise httpx.ReadTimeout("the whole exchange took too long") from None
        self._note_limits(resp)
        return resp

    async def _bounded(self, request: httpx.Request, auth: Any) -> httpx.Response:
        try:
            return await fetch_bounded(self.client, request, auth)
        except BodyTooLarge as exc:
            raise self._too_big(request, exc.size) from None

    def _too_big(self, request: httpx.Request, size: int) -> InvalidResponse:
        return InvalidResponse(
            f"{self.where(str(request.url))} answered more than {MAX_BODY >> 20} MB "
            f"({size >> 20} MB or more); not read",
            backend=self.backend,
            hint=f"is {self.safe_base} the API's address, and not a file server or proxy page?",
        )

    def _note_limits(self, resp: httpx.Response) -> None:
        remaining, reset = _rate_headers(resp)
        if remaining is not None and remaining.strip() == "0" and reset is not None:
            self._blocked_until = max(self._blocked_until, reset)

    def _check_blocked(self, path: str) -> None:
        now = wall_clock()
        if self._blocked_until > now:
            raise self._limit_error(path, self._blocked_until - now)

    # -- errors -------------------------------------------------------------------------

    def _limit_error(self, path: str, wait: float) -> Unreachable:
        reset = datetime.fromtimestamp(wall_clock() + wait, UTC).strftime("%H:%M:%S UTC")
        return Unreachable(
            f"the API rate limit at {self.safe_base} is exhausted; it resets at {reset} "
            f"(in {wait:.0f}s); {self.where(path)} was not requested",
            backend=self.backend,
            hint="wait for the reset, or use a token with a higher limit",
        )

    def _rate_limited(self, path: str, resp: httpx.Response, wait: float) -> Unreachable:
        if wait > RETRY_WITHIN:
            self._blocked_until = max(self._blocked_until, wall_clock() + wait)
        err = self._limit_error(path, wait)
        err.message = err.message.replace(
            " was not requested", f" answered HTTP {resp.status_code}"
        )
        return err

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError) -> Unreachable:
        url = self.where(path)
        if isinstance(exc, httpx.TimeoutException):
            text = f"{method} {url} did not answer within {self.timeout:g}s"
        elif isinstance(exc, httpx.ConnectError):
            why = excerpt(str(exc), mask_also=self._redact) or "connection failed"
            text = f"could not connect to {url}: {why}"
        elif isinstance(exc, httpx.UnsupportedProtocol):
            text = f"{url} is not an http(s) URL"
        else:
            said = excerpt(str(exc), mask_also=self._redact)
            text = f"{method} {url} failed: {type(exc).__name__}: {said}"
        return Unreachable(
            text, backend=self.backend, hint=f"is {self.safe_base} up and the URL right?"
        )

    def _status_error(
        self, method: str, path: str, resp: httpx.Response, sent: str | None = None
    ) -> BackendError:
        """The error for a non-2xx answer; a refusal (401/403) names the credential ``sent``
        (default: the backend's own) and where it came from, never its value."""
        url, code = self.where(path), resp.status_code
        said = self.explain(resp)
        detail = f"HTTP {code}" + (f": {said}" if said else "")
        b = self.backend
        if code in (401, 403):
            sent = sent or self._sent()
        if code == 401:
            self._auth = None  # look the credential up again next time (after a `login`)
            return Unauthorized(
                f"{url} refused the credentials ({detail}); sent {sent}",
                backend=b,
                hint=self.auth_hint,
            )
        if code == 403:
            return Unauthorized(
                f"{url} is forbidden ({detail}) for {sent}", backend=b, hint=self.forbidden_hint
            )
        if code == 404:
            return NotFound(f"{url} was not found ({detail})", backend=b)
        if code in (409, 412):
            return Conflict(f"{method} {url} conflicted ({detail})", backend=b)
        if 300 <= code < 400:
            moved = (
                safe_url(resp.headers.get("location", "")) if resp.headers.get("location") else "?"
            )
            return InvalidResponse(
                f"{url} redirected (HTTP {code}) to {moved}",
                backend=b,
                hint="configure the final URL",
            )
        if code >= 500 or code == 429:
            return Unreachable(f"{method} {url} failed on the server ({detail})", backend=b)
        return BackendError(f"{method} {url} was rejected ({detail})", backend=b)

    def json_of(self, resp: httpx.Response, what: str) -> Any:
        """The JSON body of ``resp``, or InvalidResponse naming ``what`` was expected."""
        try:
            return resp.json()
        except ValueError:
            raise InvalidResponse(
                f"{self.where(str(resp.request.url))} did not return JSON ({what} expected)",
                backend=self.backend,
                hint=f"is {self.safe_base} the API's address?",
            ) from None

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"HttpApi({self.backend!r}, {self.safe_base!r})"


T = TypeVar("T")


async def poll_until(
    item: T,
    refresh: Callable[[T], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    deadline: float,
    poll_seconds: float,
    still: Callable[[T], str],
    backend: str,
    hint: str,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Re-read ``item`` every ``poll_seconds`` until ``done``; Unreachable saying ``still(item)``
    when the next poll would pass ``deadline`` (a deploy run that is still going)."""
    while not done(item):
        if clock() + poll_seconds > deadline:
            raise Unreachable(still(item), backend=backend, hint=hint)
        await sleep(poll_seconds)
        item = await refresh(item)
    return item
