"""The alert channel form: one form for every kind; the kind picks which config field shows (rules: alerts.channels)."""

from django import forms

from alerts.models import ChannelKind, DigestFrequency, ModeFilter
from anomalies.models import Severity
from anomalies.registry import load_detectors

# Which form field holds each kind's one config setting, and how it is labelled.
CONFIG_FIELD = {
    ChannelKind.EMAIL: ("to", "Recipients", "Comma-separated e-mail addresses"),
    ChannelKind.SLACK: ("url", "Slack incoming-webhook URL", "https://hooks.slack.com/services/…"),
    ChannelKind.DISCORD: ("url", "Discord webhook URL", "https://discord.com/api/webhooks/…"),
    ChannelKind.WEBHOOK: ("url", "Your endpoint URL", "Receives a signed JSON POST (BillingWatch-Signature)"),
    ChannelKind.PAGERDUTY: ("routing_key", "PagerDuty integration key", "32 characters (Events API v2)"),
}


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    setting = forms.CharField(max_length=2000)
    min_severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.MEDIUM, label="Minimum severity")
    mode = forms.ChoiceField(choices=ModeFilter.choices, initial=ModeFilter.LIVE)
    detectors = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                          help_text="None selected: every detector.")
    send_resolved = forms.BooleanField(required=False, label="Also tell me when an anomaly is resolved")
    enabled = forms.BooleanField(required=False, initial=True)
    quiet_start = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    quiet_end = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    digest = forms.ChoiceField(choices=DigestFrequency.choices, initial=DigestFrequency.NONE)

    def __init__(self, kind: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        key, label, help_text = CONFIG_FIELD[kind]
        self.config_key = key
        self.fields["setting"].label, self.fields["setting"].help_text = label, help_text
        self.fields["detectors"].choices = [(n, n.replace("_", " ")) for n in sorted(load_detectors())]
        if kind != ChannelKind.EMAIL:
            del self.fields["digest"]

    @classmethod
    def initial_for(cls, channel) -> dict:
        value = channel.config.get(CONFIG_FIELD[channel.kind][0], "")
        return {
            "name": channel.name, "setting": ", ".join(value) if isinstance(value, list) else value,
            "min_severity": channel.min_severity, "mode": channel.mode, "detectors": channel.detectors,
            "send_resolved": channel.send_resolved, "enabled": channel.enabled, "quiet_start": channel.quiet_start,
            "quiet_end": channel.quiet_end, "digest": channel.digest,
        }

    def channel_data(self) -> dict:
        data = dict(self.cleaned_data)
        data["config"] = {self.config_key: data.pop("setting").strip()}
        data["detectors"] = list(data["detectors"])
        data.setdefault("digest", DigestFrequency.NONE)
        return data

    def add_domain_errors(self, error) -> None:
        """Per-field messages of alerts.channels' ValidationError, on the form's fields."""
        for field, messages in error.message_dict.items():
            target = "setting" if field == "config" else field
            for message in messages:
                self.add_error(target if target in self.fields else None, message)
