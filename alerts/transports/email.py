"""E-mail through Django's mail framework (MAILERS["default"]): plain text and HTML."""

import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.template.loader import render_to_string

from alerts.transports.base import COLOURS, Notice, TransportError


def render(notice: Notice) -> tuple[str, str, str]:
    template = "digest" if notice.kind == "digest" else "notice"
    context = {"notice": notice, "colours": COLOURS}
    subject = " ".join(render_to_string(f"alerts/email/{template}-subject.txt", context).split())
    return (
        subject[:250],
        render_to_string(f"alerts/email/{template}-body.txt", context),
        render_to_string(f"alerts/email/{template}-body.html", context),
    )


def send(notice: Notice, config: dict) -> int:
    subject, text, html = render(notice)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=config["to"],
        headers={"X-BillingWatch-Delivery": notice.message_id, "Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    try:
        mailers.default.send_messages([message])
    except smtplib.SMTPRecipientsRefused as exc:
        raise TransportError(f"the mail server refused the address(es): {list(exc.recipients)}", permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.smtp_code < 600
        raise TransportError(f"the mail server answered {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"could not send mail: {type(exc).__name__}: {exc}") from None
    return 250
