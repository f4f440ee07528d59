"""Make ``resource_service`` (examples/) and, for a checkout without ``pip install ./mana_auth``, the
``mana_auth`` package (the repository root) importable."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for entry in (HERE.parent, HERE.parent.parent):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))
