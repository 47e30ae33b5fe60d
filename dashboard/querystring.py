"""Filter forms send empty fields; the filtersets should only see what the user set."""


def non_empty(params):
    cleaned = params.copy()
    for key in list(cleaned):
        values = [v for v in cleaned.getlist(key) if v.strip()]
        if values:
            cleaned.setlist(key, values)
        else:
            del cleaned[key]
    return cleaned
