"""HTTP to MLflow: one shared ``httpx.AsyncClient``, auth from console.plugins.credentials, retries for
reads only, and every failure mapped to a console.ports BackendError a person can act on."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from functools import partial
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ValidationError

from cd4ml_console_mlflow.schema import ErrorReply
from console.plugins.credentials import (
    Credential,
    CredentialOptions,
    Lookup,
    alookup,
    redact_secrets,
)
from console.plugins.http import MAX_BODY, BodyTooLarge, excerpt, fetch_bounded, retry_after
from console.ports import BackendError, InvalidResponse, NotFound, Unauthorized, Unreachable

API = "/api/2.0/mlflow/"
RETRIES = 3  # extra attempts for reads
# Requests in flight to one server. More only queue inside httpcore, whose pool rescans every
# connection and queued request on each event (200 models: ~100 connections, seconds of CPU),
# and an MLflow server (4 workers by default) answers them no sooner.
CONCURRENCY = 16
RETRY_BUDGET = 10.0  # seconds, all attempts of one read together
BACKOFF = (0.2, 0.5, 1.0)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
AuthMode = Literal["auto", "none", "basic", "bearer"]


def safe_url(url: str) -> str:
    """``url`` without user:password@ and without the query (what error messages show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ServerSaid(InvalidResponse):
    """MLflow answered with an error we did not map (e.g. 400 INVALID_PARAMETER_VALUE)."""

    def __init__(self, message: str, *, backend: str, code: str, status: int) -> None:
        super().__init__(message, backend=backend)
        self.code = code
        self.status = status


class _CredentialAuth(httpx.Auth):
    """Adds ``Authorization`` per request; httpx masks the header in reprs."""

    def __init__(self, credential: Credential, scheme: Literal["basic", "bearer"]) -> None:
        self.credential = credential
        self.scheme: Literal["basic", "bearer"] = scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.credential.authorization(self.scheme)
        yield request


class MlflowTransport:
    """GET/POST/DELETE JSON against one MLflow server."""

    name = "mlflow"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        auth: AuthMode,
        credentials: CredentialOptions,
        credential_name: str,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown_url = safe_url(self.url)
        self.timeout = timeout
        self.auth_mode: AuthMode = auth
        self._cred_options = credentials
        self._cred_name = credential_name
        self._lookup: Lookup | None = None
        self._auth: httpx.Auth | None = None
        self._auth_lock = asyncio.Lock()
        self._slots: asyncio.Semaphore | None = None  # made on first use, from CONCURRENCY
        # identical GETs in flight share one request (versions() and stages() of a model both
        # read registered-models/get); any write starts a new generation of them
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            verify=self._tls(verify),
            transport=transport,
            limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
            headers={"User-Agent": "cd4ml-console-mlflow"},
            follow_redirects=False,
        )

    def _slot(self) -> asyncio.Semaphore:
        """The requests in flight to the server, at most CONCURRENCY."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(CONCURRENCY)
        return self._slots

    def _tls(self, verify: bool | str) -> bool | ssl.SSLContext:
        """``verify_tls``: a bool, or a CA bundle file (httpx wants an SSLContext for that)."""
        if not isinstance(verify, str):
            return verify
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise NotFound(
                f"verify_tls = {verify!r}: can not load the CA bundle: {exc}",
                backend=self.name,
                hint="point verify_tls at a PEM file of CA certificates",
            ) from None

    # -- credentials ------------------------------------------------------------------------

    async def _ensure_auth(self) -> None:
        if self.auth_mode == "none" or self._lookup is not None:
            return
        async with self._auth_lock:
            if self._lookup is not None:
                return
            found = await alookup(self._cred_name, self._cred_options, timeout=self.timeout)
            cred = found.credential
            if cred is None and self.auth_mode != "auto":
                raise Unauthorized(
                    f"{self.auth_mode} auth for {self.shown_url} needs a credential "
                    f"{self._cred_name!r}; looked in: " + "; ".join(found.tried),
                    backend=self.name,
                    hint=f"run `cd4ml-console login {self._cred_name}` (docs/credentials.md)",
                )
            if cred is not None:
                scheme = self.auth_mode
                if scheme not in ("basic", "bearer"):
                    scheme = "basic" if cred.username else "bearer"
                if scheme == "basic" and not cred.username:
                    raise Unauthorized(
                        f"basic auth for {self.shown_url} needs a username; "
                        f"{cred.describe()} has none",
                        backend=self.name,
                        hint="set username = ... in [backends.registry] (or username_env)",
                    )
                self._auth = _CredentialAuth(cred, "basic" if scheme == "basic" else "bearer")
            self._lookup = found

    def describe_auth(self) -> str:
        """How requests authenticate (for check()/doctor); never the secret."""
        if self.auth_mode == "none":
            return "no auth"
        if isinstance(self._auth, _CredentialAuth):
            return f"{self._auth.scheme} auth, {self._auth.credential.describe()}"
        return "no credential found, sending no auth"

    # -- requests ---------------------------------------------------------------------------

    async def get(self, endpoint: str, model: type[M], params: Mapping[str, Any]) -> M:
        """A read: retried on 5xx and connection errors (at most 3 times within 10 s).
        A caller asking for what is already being fetched waits for that answer."""
        key = ("GET", endpoint, model, tuple(sorted((k, str(v)) for k, v in params.items())))
        running = self.shared(
            key, lambda: self._call("GET", endpoint, model, params=params, retry=True)
        )
        # shielded: one caller giving up (a timeout) does not cancel the others' answer
        return cast(M, await asyncio.shield(running))

    def shared(self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """The read of ``key`` in flight, else ``read()`` started now (single flight).
        Await it through ``asyncio.shield``: it is everyone's."""
        running = self._inflight.get(key)
        if running is None:
            running = asyncio.ensure_future(read())
            self._inflight[key] = running
            running.add_done_callback(partial(self._landed, key))
        return running

    def in_flight(self, key: tuple[Any, ...]) -> asyncio.Future[Any] | None:
        """The :meth:`shared` read of ``key`` still running (started since the last write)."""
        return self._inflight.get(key)

    def _landed(self, key: tuple[Any, ...], done: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved: nobody left waiting is not an "unretrieved" error

    async def search(self, endpoint: str, model: type[M], body: Mapping[str, Any]) -> M:
        """A read sent as POST (runs/search): retried like :meth:`get`."""
        return await self._call("POST", endpoint, model, body=body, retry=True)

    async def write(
        self, method: Literal["POST", "DELETE"], endpoint: str, body: Mapping[str, Any]
    ) -> None:
        """A mutation: never retried. Reads in flight are not shared across it."""
        self._inflight.clear()
        try:
            await self._call(method, endpoint, None, body=body, retry=False)
        finally:
            self._inflight.clear()

    async def version(self) -> str:
        """The server's MLflow version from ``GET /version`` ("" when it has none)."""
        await self._ensure_auth()
        try:
            resp = await self._client.get("/version", auth=self._auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError:
            return ""
        text = resp.text.strip()
        return text if resp.status_code == 200 and len(text) < 40 and "<" not in text else ""

    async def _call(
        self,
        method: str,
        endpoint: str,
        model: type[M] | None,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        retry: bool,
    ) -> Any:
        await self._ensure_auth()
        path = API + endpoint
        sent: float | None = None  # when the first try was sent: the retry budget runs from it
        last: Unreachable | None = None  # why the last try failed
        attempt = 0
        while True:
            try:
                # Waiting for a slot is not waiting for the server: each try's time (and the
                # budget of all of them) runs from when it is sent.
                async with self._slot():
                    now = time.monotonic()
                    sent = now if sent is None else sent
                    if last is not None and now - sent > RETRY_BUDGET:
                        raise last  # the retry's turn came after the budget: not sent
                    left = max(0.1, min(self.timeout, sent + RETRY_BUDGET - now))
                    resp = await self._send(method, path, params, body, left)
                return self._parse(resp, path, model)
            except Unreachable as exc:
                if exc is last or not retry or attempt >= RETRIES or sent is None:
                    raise
                last = exc
                # A 429/503 that names its Retry-After is not asked again sooner.
                wait = max(BACKOFF[attempt], getattr(exc, "retry_after", 0.0))
                if sent + RETRY_BUDGET - time.monotonic() <= wait:
                    raise
                await asyncio.sleep(wait)
                attempt += 1

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        timeout: float,
    ) -> httpx.Response:
        where = f"{self.shown_url}{path}"
        try:
            # httpx's timeout bounds each phase (connect, each read); a body trickling in one
            # byte at a time never trips it, so the whole exchange is bounded too.
            request = self._client.build_request(
                method,
                path,
                params=dict(params) if params else None,
                json=dict(body) if body is not None else None,
                timeout=timeout,
            )
            return await asyncio.wait_for(
                fetch_bounded(self._client, request, self._auth or httpx.USE_CLIENT_DEFAULT),
                timeout * 2 + 1,
            )
        except BodyTooLarge as exc:
            raise InvalidResponse(
                f"MLflow at {where} answered more than {MAX_BODY >> 20} MB "
                f"({exc.size >> 20} MB or more); not read",
                backend=self.name,
                hint="is url pointing at an MLflow tracking server, and not a file or proxy page?",
            ) from None
        except TimeoutError:
            raise Unreachable(
                f"MLflow at {where} did not finish answering within {timeout * 2 + 1:g}s",
                backend=self.name,
                hint="check that the server is up; raise timeout_seconds if it is just slow",
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(
                f"MLflow at {where} did not answer within {timeout:g}s",
                backend=self.name,
                hint="check that the server is up; raise timeout_seconds if it is just slow",
            ) from None
        except httpx.TransportError as exc:
            raise Unreachable(
                f"can not connect to MLflow at {self.shown_url}: {type(exc).__name__}: "
                f"{excerpt(str(exc), mask_also=self._redact)}",
                backend=self.name,
                hint="check url in [backends.registry] and that the server is running",
            ) from None

    def _parse(self, resp: httpx.Response, path: str, model: type[M] | None) -> Any:
        where = f"{self.shown_url}{path}"
        status = resp.status_code
        if status >= 400:
            raise self._error(resp, where)
        if 300 <= status < 400:
            raise InvalidResponse(
                f"MLflow at {where} redirected (HTTP {status}) to {resp.headers.get('location')}",
                backend=self.name,
                hint="use the final URL in [backends.registry] url",
            )
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidResponse(
                f"MLflow at {where} answered HTTP {status} with something that is not JSON "
                f"({resp.headers.get('content-type', 'no content type')})",
                backend=self.name,
                hint="is url pointing at an MLflow tracking server?",
            ) from None
        if model is None:
            return None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise InvalidResponse(
                f"MLflow at {where} answered with an unexpected shape: {loc}: {first['msg']}",
                backend=self.name,
                hint="is the server an MLflow 2.x/3.x tracking server?",
            ) from None

    def _redact(self, text: str) -> str:
        """``text`` without any form of the credential in use (a peer may echo it)."""
        auth = self._auth
        return redact_secrets(
            text, [auth.credential if isinstance(auth, _CredentialAuth) else None]
        )

    def _error(self, resp: httpx.Response, where: str) -> BackendError:
        status = resp.status_code
        try:
            err = ErrorReply.model_validate(resp.json())
        except (ValueError, ValidationError):  # a proxy's or a web server's page
            err = ErrorReply(message=resp.text)
        # one line (an HTML page's words), masked, then cut: a cut token is no longer found
        err = err.model_copy(update={"message": excerpt(err.message, mask_also=self._redact)})
        said = f": {err.error_code or 'HTTP ' + str(status)}: {err.message}" if err.message else ""
        if status in (401, 403):
            looked = self._lookup
            hint = f"run `cd4ml-console login {self._cred_name}` (docs/credentials.md)"
            if looked is not None and looked.credential is None:
                hint = "no credential found (looked in: " + "; ".join(looked.tried) + "); " + hint
            auth = self._auth
            sent = auth.credential.describe() if isinstance(auth, _CredentialAuth) else "none"
            said += f"; credential sent: {sent}"
            verb = "refused our credentials" if status == 401 else "denied access"
            if status == 401:  # look the credential up again next time (after a login)
                self._lookup, self._auth = None, None
            return Unauthorized(
                f"MLflow at {where} {verb} (HTTP {status}){said}", backend=self.name, hint=hint
            )
        if status == 404 and not err.error_code:
            return self._not_mlflow(where)
        if status == 404 or err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return NotFound(f"MLflow at {where}: not found{said}", backend=self.name)
        if status >= 500 or status == 429:
            failed = Unreachable(
                f"MLflow at {where} failed with HTTP {status}{said}",
                backend=self.name,
                hint="the server is up but failing; check its logs",
            )
            failed.retry_after = retry_after(resp, time.time()) or 0.0  # type: ignore[attr-defined]
            return failed
        return ServerSaid(
            f"MLflow at {where} rejected the request (HTTP {status}){said}",
            backend=self.name,
            code=err.error_code,
            status=status,
        )

    def _not_mlflow(self, where: str) -> InvalidResponse:
        """A 404 without MLflow's ``error_code``: the server (a proxy, another app, the wrong
        path prefix) has no such route, so nothing can be said about the model."""
        return InvalidResponse(
            f"{where} answered HTTP 404 without an MLflow error code: this is not an MLflow "
            "REST API (a wrong url or path prefix?), which says nothing about the model",
            backend=self.name,
            hint=f"set url in [backends.registry] to the tracking server's base URL, the one "
            f"under which {API} answers (it is {self.shown_url} now)",
        )

    async def aclose(self) -> None:
        for running in list(self._inflight.values()):
            running.cancel()
        self._inflight.clear()
        await self._client.aclose()


__all__ = ["API", "MlflowTransport", "ServerSaid", "safe_url"]
