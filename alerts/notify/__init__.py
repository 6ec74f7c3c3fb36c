"""Where alarms go: Alertmanager (``alertmanager``), signed webhooks (``webhook``), e-mail
(``email``); each sends on its own thread behind a bounded queue (``worker``)."""

from __future__ import annotations

from dcim.config import read_secret


def build_notifiers(settings, dashboard_url: str | None):
    """(Alertmanager notifier or None, [event notifiers]) from ``[alerts]``. Secrets are read
    here; a missing one is a ConfigError naming its key (never its value)."""
    from alerts.notify.alertmanager import AlertmanagerNotifier
    from alerts.notify.email import EmailNotifier
    from alerts.notify.webhook import WebhookNotifier

    am = None
    common = {"queue_size": settings.queue_size, "retry_for_s": settings.retry_for_s}
    if settings.alertmanager is not None:
        s = settings.alertmanager
        am = AlertmanagerNotifier(s.urls, resend_s=s.resend_s, timeout_s=s.timeout_s,
                                  bearer_token=read_secret(s.bearer_token, "alerts.alertmanager.bearer_token"),
                                  dashboard_url=dashboard_url, **common)
    others: list[WebhookNotifier | EmailNotifier] = []
    for i, w in enumerate(settings.webhooks):
        others.append(WebhookNotifier(w.url, secret=read_secret(w.secret, f"alerts.webhooks[{i}].secret"),
                                      min_severity=w.min_severity, timeout_s=w.timeout_s, **common))
    if settings.email is not None:
        e = settings.email
        others.append(EmailNotifier(e.host, e.port, e.from_addr, e.to, security=e.security, username=e.username,
                                    password=read_secret(e.password, "alerts.email.password"),
                                    min_severity=e.min_severity, timeout_s=e.timeout_s, **common))
    return am, others
