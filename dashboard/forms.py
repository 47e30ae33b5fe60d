"""Forms of the dashboard: they parse and check input shapes; the rules live in the domain modules."""

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.utils.text import slugify

from tenants.models import Membership

User = get_user_model()


class SignupForm(forms.Form):
    email = forms.EmailField()
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    company = forms.CharField(max_length=200, label="Company name")
    slug = forms.SlugField(max_length=60, required=False, label="Dashboard address",
                           help_text="Lower-case letters, digits and hyphens; leave empty to derive it from the name.")

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists() or User.objects.filter(username=email).exists():
            raise forms.ValidationError("An account with this e-mail address already exists. Log in instead.")
        return email

    def clean(self):
        data = super().clean()
        if data.get("email") and data.get("password"):
            try:
                password_validation.validate_password(data["password"], User(username=data["email"],
                                                                             email=data["email"]))
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        if data.get("company") and not (data.get("slug") or slugify(data["company"])):
            self.add_error("slug", "Choose an address: the name has no letters or digits to derive one from.")
        return data

    def save(self):
        data = self.cleaned_data
        return User.objects.create_user(username=data["email"], email=data["email"], password=data["password"])


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)


class RoleForm(forms.Form):
    member = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices)


class RemoveForm(forms.Form):
    member = forms.CharField(max_length=150)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    read_only = forms.BooleanField(required=False)
