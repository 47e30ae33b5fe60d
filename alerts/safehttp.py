"""Outbound HTTP to URLs that tenants typed in: safe by default.

- https only, unless BILLINGWATCH_ALERTS_ALLOW_HTTP (development);
- the host name is resolved here, every address it resolves to is checked
  (no private, loopback, link-local, reserved or multicast address unless
  BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS), and the connection goes to the
  address that was checked, so a DNS answer that changes between the check
  and the connect (DNS rebinding) cannot redirect us. TLS still verifies the
  certificate against the host name (SNI and hostname check use the name);
- no redirects at all: a 3xx is a failure (a redirect is how a public URL
  reaches an internal one, and Stripe's own guidance is the same);
- a short connect/read timeout and an overall deadline;
- at most BILLINGWATCH_ALERTS_MAX_RESPONSE_BYTES of the body are read.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

USER_AGENT = "BillingWatch-Alerts/1.0"


class UnsafeURL(Exception):
    """The URL may not be called (scheme or address refused)."""


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes
    truncated: bool


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def resolve_checked(host: str, port: int) -> str:
    """The first address of `host`, after checking that every address it has is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        if not _address_allowed(ipaddress.ip_address(address.split("%")[0])):
            raise UnsafeURL(f"{host} resolves to {address}, a private, loopback or reserved address")
    return addresses[0]


class _PinnedAdapter(HTTPAdapter):
    """Connects to one checked address while TLS and Host still use the name."""

    def __init__(self, address: str, hostname: str):
        self.address, self.hostname = address, hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def post_json(url: str, body: bytes, headers: dict[str, str] | None = None) -> HttpResult:
    """POST `body` (JSON bytes) to `url` under the rules above.

    Raises UnsafeURL for a refused URL and requests' exceptions (Timeout,
    ConnectionError) for network failures; any HTTP status is returned.
    """
    parts = urlsplit(url)
    allowed = {"https", "http"} if settings.BILLINGWATCH_ALERTS_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed or not parts.hostname:
        raise UnsafeURL("only https:// URLs may be called")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(parts.hostname, port)
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets in Host
        host_header = parts.netloc.rsplit("@", 1)[-1]
    timeout = settings.BILLINGWATCH_ALERTS_TIMEOUT_SECONDS
    limit = settings.BILLINGWATCH_ALERTS_MAX_RESPONSE_BYTES
    deadline = time.monotonic() + 2 * timeout
    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc from the environment
        session.mount(f"{parts.scheme}://", _PinnedAdapter(address, parts.hostname))
        response = session.post(
            url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Host": host_header,
                **(headers or {}),
            },
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
        )
        with response:
            chunks, size, truncated = [], 0, False
            for chunk in response.iter_content(chunk_size=4096):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit or time.monotonic() > deadline:
                    truncated = True
                    break
            return HttpResult(response.status_code, b"".join(chunks)[:limit], truncated)
