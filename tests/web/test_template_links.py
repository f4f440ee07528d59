"""The pages link to each other by route name (``{% url 'web-...' %}``), never by a hand-written path,
so a route that moves takes its links with it (issue 10)."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "web"
HAND_WRITTEN = re.compile(r'(?:action|href)="/')


def test_no_page_links_by_a_hand_written_path():
    offenders = [f"{page.name}:{number}: {line.strip()}"
                 for page in sorted(TEMPLATES.glob("*.html"))
                 for number, line in enumerate(page.read_text().splitlines(), 1) if HAND_WRITTEN.search(line)]
    assert not offenders, "use {% url 'route-name' %}:\n" + "\n".join(offenders)
