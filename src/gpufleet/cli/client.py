"""The CLI's HTTP client: one call to the server's API, retried when that is safe, and every failure turned
into a clear line and an exit code."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import typer

from .common import EXIT_BAD_INPUT, EXIT_FAILURE, err, escape

EXIT_REFUSED = 4
DEFAULT_SERVER = "http://127.0.0.1:8080"


class Client:
    def __init__(self, server: str | None):
        import httpx
        self.base = (server or os.environ.get("GPUFLEET_SERVER") or DEFAULT_SERVER).rstrip("/")
        token = os.environ.get("GPUFLEET_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=60.0)

    def call(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
             headers: dict | None = None, expect_json: bool = True, idempotent: bool | None = None,
             exits: dict[int, int] | None = None) -> Any:
        """One API call. An idempotent one (GET, PUT, DELETE, or a caller that says so: a keyed submission,
        a cancel) is retried on connection errors and 5xx answers with exponential backoff. `exits`: the
        exit code for an HTTP status where a verb documents another than the usual."""
        import httpx
        from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        again = method in ("GET", "PUT", "DELETE", "HEAD") if idempotent is None else idempotent
        attempts = max(1, int(os.environ.get("GPUFLEET_CLIENT_RETRIES", RETRIES))) if again else 1
        retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=RETRY_WAIT_S, max=5),
                            retry=retry_if_exception(_transient), reraise=True)
        try:
            r = retrying(self._send, method, path, json_body, params, headers)
        except _ServerError as e:
            r = e.response
        except (httpx.HTTPError, RetryError) as e:
            _fail(f"cannot reach the gpufleet server at {self.base}: {e} (is `gpufleet serve` running? "
                  "set --server or GPUFLEET_SERVER)")
        if r.status_code >= 400:
            try:
                message = r.json().get("error") or r.text
            except ValueError:
                message = r.text
            if exits and r.status_code in exits:
                _fail(str(message), exits[r.status_code])
            if r.status_code in (401, 403):
                hint = "" if os.environ.get("GPUFLEET_TOKEN") or "GPUFLEET_TOKEN" in str(message) \
                    else " (set GPUFLEET_TOKEN)"
                _fail(f"refused: {message}{hint}", EXIT_REFUSED)
            if r.status_code in (400, 409, 422):
                _fail(str(message), EXIT_BAD_INPUT)
            _fail(f"{message} (HTTP {r.status_code})")
        return r.json() if expect_json else r.text


    def _send(self, method: str, path: str, json_body: Any, params: dict | None, headers: dict | None) -> Any:
        r = self.http.request(method, path, json=json_body, params=params, headers=headers)
        if r.status_code >= 500:
            raise _ServerError(r)
        return r


RETRIES = 5          # attempts of an idempotent call (GPUFLEET_CLIENT_RETRIES overrides)
RETRY_WAIT_S = 0.2   # first backoff; doubles each time, at most 5 s


class _ServerError(Exception):
    """A 5xx answer: worth another try when the call is idempotent."""

    def __init__(self, response: Any):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _transient(e: BaseException) -> bool:
    import httpx
    return isinstance(e, (_ServerError, httpx.TransportError))


def _fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}")
    raise typer.Exit(code)
