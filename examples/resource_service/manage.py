#!/usr/bin/env python
"""python examples/resource_service/manage.py runserver 127.0.0.1:8001"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent), str(here.parent.parent)]  # resource_service, and mana_auth from the checkout
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resource_service.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
