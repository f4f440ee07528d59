"""The base of every app's settings object (``<app>/app_settings.py``).

An app's options live in one dict of Django's settings, named by ``namespace`` (``settings.ACCOUNTS``,
``settings.SECURITY``, ...). Each option is a property, read from the settings on first access and then kept
on the object until Django says a setting changed (``setting_changed``: the pytest ``settings`` fixture and
``override_settings`` send it), so tests just work and a request does not go through ``django.conf.settings``
for every option it reads (a refresh read 38, about 2% of its CPU: docs/benchmarks.md, eighth pass). Only
values that cannot be changed in place are kept (numbers, text, durations, tuples of them); a list or a dict
is read on every access. The contract variables several apps need are declared here, once.
"""

import weakref
from datetime import timedelta

from django.conf import settings
from django.core.signals import setting_changed

_KEPT_TYPES = (bool, int, float, str, bytes, timedelta, type(None))
_instances: "weakref.WeakSet[AppSettings]" = weakref.WeakSet()


def _immutable(value) -> bool:
    if isinstance(value, tuple | frozenset):
        return all(_immutable(item) for item in value)
    return isinstance(value, _KEPT_TYPES)


class _KeptProperty:
    """An AppSettings property whose value, once read, is kept in the instance's ``__dict__`` (which a
    non-data descriptor lets win over it) until ``_forget`` clears it."""

    def __init__(self, prop: property, name: str):
        self.fget, self.name, self.__doc__ = prop.fget, name, prop.__doc__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.fget(instance)
        if _immutable(value):
            instance.__dict__[self.name] = value
        return value


def _keep_properties(cls) -> None:
    for name, value in list(vars(cls).items()):
        if isinstance(value, property) and value.fset is None:
            setattr(cls, name, _KeptProperty(value, name))


def _forget(**kwargs) -> None:
    for instance in list(_instances):
        instance.__dict__.clear()


setting_changed.connect(_forget, dispatch_uid="core.app_settings.forget")


class AppSettings:
    namespace = ""  # the dict in Django's settings holding this app's options ("" for none)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _keep_properties(cls)

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        _instances.add(instance)
        return instance

    def _get(self, name, default):
        return getattr(settings, self.namespace, {}).get(name, default) if self.namespace else default

    @property
    def PUBLIC_URL(self) -> str:
        """Base of the links in emails (``AUTH_PUBLIC_URL``)."""
        return settings.AUTH_PUBLIC_URL

    @property
    def REAUTH_MAX_AGE(self) -> timedelta:
        """How long a password entry keeps a session fresh (``AUTH_REAUTH_MAX_AGE_SECONDS``)."""
        return timedelta(seconds=settings.AUTH_REAUTH_MAX_AGE_SECONDS)


_keep_properties(AppSettings)  # the shared options above are kept the same way
