"""Reading what the portal mailed, as its recipient would: the newest message and its links."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from conftest import rows

from portal.mail.models import OutboxMessage

URL_RE = re.compile(r"https?://\S+")


def mails_to(address: str) -> list[OutboxMessage]:
    return sorted(rows(OutboxMessage, to_address=address), key=lambda m: m.id)


def last_mail(address: str) -> OutboxMessage:
    messages = mails_to(address)
    assert messages, f"nothing was mailed to {address}"
    return messages[-1]


def mailed_link(address: str, prefix: str, host: str = "acme.localhost") -> str:
    """The path of the link starting with `prefix` in the newest mail to `address`.

    Checks on the way that the link names the partner's own host and that the HTML version
    of the message carries the same link.
    """
    message = last_mail(address)
    urls = [u for u in URL_RE.findall(message.body_text) if urlsplit(u).path.startswith(prefix)]
    assert len(urls) == 1, (prefix, message.body_text)
    url = urlsplit(urls[0])
    assert url.netloc == host, urls[0]
    assert f'href="{urls[0]}"' in message.body_html
    return url.path


def token_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]
