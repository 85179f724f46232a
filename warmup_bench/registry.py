"""One registry type for every kind of name a run uses (optimizer, warmup, schedule, model,
data set, task, augmentation): a name maps to an entry, and each name remembers who
provided it (built in, or a plugin with the SHA-256 of its source).

An entry carries its own rules (`check(cfg)`, e.g. "needs --warmup-period") and its
texts (`description`, and the papers' `label`), so validation, `list`, grid files and the
report's labels all read the entries; nothing keeps a parallel table beside them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from .errors import ConfigError

HASH_CHARS = 16  # of the SHA-256 a run's config records
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # what a plugin may call what it registers


class UnknownName(ConfigError):
    """A name no registry holds (perhaps one a plugin that is not loaded would provide)."""

    def __init__(self, message: str, value):
        super().__init__(message)
        self.value = value


class RegistrationError(ConfigError):
    """A registration that cannot be taken (a taken or malformed name)."""


def check_choice(option: str, value, choices) -> None:
    """The one check of a name against its valid choices (CLI flags, presets, grid files,
    data-set names): raises UnknownName listing them."""
    choices = list(choices)
    if value not in choices:
        raise UnknownName(f"{option} {value!r} is not valid; choose from: "
                          f"{', '.join(choices)}.", value)


def expect_result(value, kind: type, kind_name: str, what: str, factory):
    """`value`, which `factory` (an entry's builder: perhaps a plugin's) returned, when it
    is a `kind` (named `kind_name` in the message); otherwise a TypeError naming what it
    returned, with the factory as its `culprit`, so that plugins.blame names the plugin
    it came from."""
    if isinstance(value, kind):
        return value
    raise result_error(f"{what} returned {type(value).__name__}, not a {kind_name}", factory)


def result_error(message: str, factory) -> TypeError:
    """A TypeError for a value `factory` returned, blaming the factory (see expect_result)."""
    error = TypeError(message)
    error.culprit = getattr(factory, "func", factory)  # a partial: the function inside
    return error


@dataclass(frozen=True)
class Provider:
    """Where registered names came from: a plugin file's (or package module's) name and
    the SHA-256 of its content (a data file's, for a data set read from the user's files)."""

    name: str
    sha256: str
    path: Path | None = None

    @property
    def ref(self) -> str:
        """What a run's config records: "cosine_warmup.py#sha256:1a2b..." (the file name,
        not its path, so a run's identity does not depend on where it was started)."""
        return f"{self.name}#sha256:{self.sha256[:HASH_CHARS]}"


E = TypeVar("E")
_registering: list[Provider] = []  # the plugin whose code is running (registrations are its)


@contextmanager
def registering_as(provider: Provider) -> Iterator[None]:
    """Registrations made inside are `provider`'s (a plugin file being loaded)."""
    _registering.append(provider)
    try:
        yield
    finally:
        _registering.pop()


def current_provider() -> Provider | None:
    return _registering[-1] if _registering else None


class Registry(MutableMapping[str, E], Generic[E]):
    """Names of one kind mapped to their entries, in registration order."""

    by_kind: ClassVar[dict[str, Registry]] = {}  # every registry, by the kind it holds

    def __init__(self, kind: str, option: str, entries: dict[str, E] | None = None):
        self.kind, self.option = kind, option  # "warmup", and how a message names it
        self._entries: dict[str, E] = dict(entries or {})
        self.providers: dict[str, Provider] = {}  # names that are not built in
        Registry.by_kind[kind] = self

    # ---- the mapping (lookups, `in`, iteration over names) ----------------------------

    def __getitem__(self, name: str) -> E:
        return self._entries[name]

    def __setitem__(self, name: str, entry: E) -> None:  # a built-in entry (tests patch them)
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self.providers.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    # ---- what the rest of the package asks -------------------------------------------

    def lookup(self, name: str, option: str | None = None) -> E:
        """The entry of `name`; UnknownName listing the valid names otherwise."""
        check_choice(option or self.option, name, self._entries)
        return self._entries[name]

    def register(self, name: str, entry: E, provider: Provider | None = None) -> str:
        """Adds a plugin's entry; `provider` defaults to the plugin being loaded.
        Registering the same name again from the same source is a no-op."""
        provider = provider or current_provider() or INTERACTIVE
        if not (isinstance(name, str) and (NAME.fullmatch(name) or provider.name == name)):
            raise RegistrationError(
                f"{self.kind} name {name!r} from plugin {provider.name} must be a non-empty "
                "string of letters, digits and . _ + - only.")
        if name in self._entries:
            previous = self.providers.get(name)
            if previous is None:
                raise RegistrationError(f"{self.kind} {name!r} is built in; plugin "
                                        f"{provider.name} must choose another name.")
            if previous.sha256 != provider.sha256:
                raise RegistrationError(f"{self.kind} {name!r} is registered by "
                                        f"{previous.name} already; plugin {provider.name} "
                                        "must choose another name.")
        self._entries[name] = entry
        self.providers[name] = provider
        return name

    def provider(self, name: str) -> Provider | None:
        """Who registered `name` (None: built in)."""
        return self.providers.get(name)

    def origin(self, name: str) -> str:
        """"built in", or the providing plugin's ref (for `list`)."""
        provider = self.providers.get(name)
        return "built in" if provider is None else provider.ref

    @classmethod
    def snapshot(cls) -> dict:
        """Every registry's entries and providers (tests restore them between cases)."""
        return {kind: (dict(r._entries), dict(r.providers)) for kind, r in cls.by_kind.items()}

    @classmethod
    def restore(cls, saved: dict) -> None:
        for kind, (entries, providers) in saved.items():
            registry = cls.by_kind[kind]
            registry._entries, registry.providers = dict(entries), dict(providers)

    @classmethod
    def withdraw(cls, provider: Provider) -> None:
        """Takes back everything `provider` registered (a plugin that failed half-way)."""
        for registry in cls.by_kind.values():
            for name in [n for n, p in registry.providers.items() if p == provider]:
                del registry[name]


# registrations from a Python session (the hash 0.2 recorded for them)
INTERACTIVE = Provider("interactive", hashlib.sha256(b"interactive").hexdigest())
