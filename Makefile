# Two commands: `make run` (install, migrate, serve on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint worker beat migrate check-deploy clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput

run: migrate
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver 127.0.0.1:8000

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule

clean:
	rm -rf $(VENV) var
