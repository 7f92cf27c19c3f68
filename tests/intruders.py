"""Clients another user could point at a stage's Dask scheduler, for the refusal tests.

Each knows the scheduler's address; none holds the cluster's private key. The CA certificate is
public (anyone who saw a worker's TLS handshake has it), so one intruder trusts it and still has
no certificate of its own, and one presents a self-signed certificate of its own.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from distributed import Client
from distributed.comm import connect
from distributed.security import Security


def intruders(address: str, ca: str) -> dict[str, tuple[str, Security | None]]:
    """(address, security) of the intruding Clients; ``ca``: the cluster's CA (PEM or file)."""
    own = Security.temporary()
    return {
        "plain tcp": (address.replace("tls://", "tcp://"), None),
        "tls with its own certificate": (
            address,
            Security(
                require_encryption=True,
                tls_ca_file=ca,
                tls_client_cert=own.tls_client_cert,
                tls_client_key=own.tls_client_key,
            ),
        ),
    }


async def _identity_without_certificate(address: str, ca: str) -> dict:
    """Ask the scheduler who it is over TLS that trusts its CA but shows no certificate."""
    context = ssl.create_default_context(
        cadata=ca if "\n" in ca else None, cafile=None if "\n" in ca else ca
    )
    context.check_hostname = False
    comm = await connect(address, timeout="10s", ssl_context=context)
    try:
        await comm.write({"op": "identity"})
        return await asyncio.wait_for(comm.read(), 10)
    finally:
        comm.abort()


def assert_refused(client: Client) -> None:
    """The scheduler ``client`` talks to refuses every intruder, while a client holding the
    cluster's credentials (a copy of ``client``'s) still gets work done."""
    address = client.scheduler.address
    assert address.startswith("tls://"), address
    ca = client.security.tls_ca_file
    for name, (target, security) in intruders(address, ca).items():
        # CommClosedError, a failed TLS handshake and a timeout are all OSErrors
        with pytest.raises(OSError), Client(target, security=security, timeout="10s") as intruder:
            intruder.submit(sum, [1, 2]).result(timeout=10)
            pytest.fail(f"{name} got in")
    with pytest.raises(OSError):
        reply = asyncio.run(_identity_without_certificate(address, ca))
        pytest.fail(f"tls without a certificate got in: {reply}")
    with Client(address, security=client.security, timeout="10s") as friend:
        assert friend.submit(sum, [1, 2], pure=False).result(timeout=30) == 3
