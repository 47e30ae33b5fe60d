"""Links into the Stripe dashboard for a Stripe object id, on the live or the test path."""

STRIPE_DASHBOARD = "https://dashboard.stripe.com/"

# Id prefix → dashboard section (Stripe's ids say what they are).
SECTIONS = {
    "ch": "payments", "py": "payments", "pi": "payments", "cus": "customers", "in": "invoices",
    "sub": "subscriptions", "dp": "disputes", "du": "disputes", "re": "refunds", "evt": "events",
    "prod": "products", "price": "prices",
}


def stripe_url(object_id: str, livemode: bool) -> str | None:
    """https://dashboard.stripe.com/[test/]<section>/<id>, or None for an id of an unknown kind."""
    if not object_id or "_" not in object_id:
        return None
    section = SECTIONS.get(object_id.split("_", 1)[0])
    if section is None:
        return None
    return f"{STRIPE_DASHBOARD}{'' if livemode else 'test/'}{section}/{object_id}"
