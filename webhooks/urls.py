from django.urls import path, re_path

from webhooks import views

urlpatterns = [
    path("stripe/<str:token>/", views.stripe_webhook, name="stripe-webhook"),
    # Without the trailing slash too: Stripe does not follow redirects, so
    # APPEND_SLASH must never get a chance to answer 301.
    re_path(r"^stripe/(?P<token>[^/]+)$", views.stripe_webhook),
]
