"""The one rule for comparing and storing email addresses."""


def normalize_email(email: str) -> str:
    """Emails are the login: compared case-insensitively, stored lowercased and trimmed."""
    return (email or "").strip().lower()
