"""Request bodies are bounded (MAX_CONTENT_LENGTH), refused before they are read."""

from __future__ import annotations

import io

import pytest
from conftest import HostClient, host_client
from flask import Flask, request

from portal.auth.guards import public
from portal.body_limit import accepts_bodies_up_to
from portal.tenancy.models import Partner

MIB = 1024 * 1024
FORM = "application/x-www-form-urlencoded"
BYTES = "application/octet-stream"


class Unread(io.RawIOBase):
    """A body of `size` bytes that fails the test as soon as anything reads it."""

    def __init__(self, size: int) -> None:
        self.size, self.position = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking to its end
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: object) -> int:
        raise AssertionError("the body was read")


@pytest.mark.parametrize("hx", [False, True])
def test_a_huge_anonymous_post_is_refused_unread(
    acme_client: HostClient, acme: Partner, hx: bool
) -> None:
    response = acme_client.post(
        "/login",
        input_stream=Unread(50 * MIB),
        content_type=FORM,
        headers={"HX-Request": "true"} if hx else {},
    )
    assert response.status_code == 413
    if hx:
        assert response.text == "This request is larger than this page accepts."
    else:  # the partner's own error page
        assert "This request is larger than this page accepts." in response.text
        assert "Too large · Acme Corp" in response.text


def test_a_body_under_the_limit_is_read(acme_client: HostClient, acme: Partner) -> None:
    token = acme_client.csrf_token()
    padding = "x" * (MIB - 4096)
    response = acme_client.post(
        "/login", data={"email": "a@acme.test", "password": "p", "csrf_token": token, "p": padding}
    )
    assert response.status_code == 422  # parsed and answered: the sign-in failed in place
    assert "Incorrect email or password." in response.text


def test_a_route_may_take_larger_bodies(make_app, data: Flask) -> None:
    """A later upload (a partner's logo) raises the limit for its own route only."""
    app = make_app(fresh=True)

    @public
    @accepts_bodies_up_to(3 * MIB)
    def upload() -> str:
        return str(len(request.get_data()))

    app.add_url_rule("/upload", "upload", upload, methods=["POST"])
    client = host_client(app, None)
    headers = {"X-CSRFToken": client.csrf_token()}
    two_mib = b"x" * (2 * MIB)
    response = client.post("/upload", data=two_mib, content_type=BYTES, headers=headers)
    assert response.status_code == 200 and response.text == str(2 * MIB)
    assert client.post("/login", data=two_mib, content_type=FORM).status_code == 413
    too_big = client.post("/upload", input_stream=Unread(4 * MIB), headers=headers)
    assert too_big.status_code == 413
