"""Every exception the chain layer defines is a ChainError.

A participant's loop catches ``ChainError`` to tell a chain-side failure from a bug; an
exception class in any of ``flare.chain``'s sub-packages that is not one would escape it.
"""

import importlib
import inspect
import pkgutil

import pytest

import flare.chain
from flare.chain import ChainError
from flare.errors import FlareError


def _chain_modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(flare.chain.__path__, prefix="flare.chain.")
    )


def _exceptions_defined_in(module_name: str) -> list[type[BaseException]]:
    module = importlib.import_module(module_name)
    return [
        value
        for _, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, BaseException) and value.__module__ == module_name
    ]


CHAIN_EXCEPTIONS = [cls for name in _chain_modules() for cls in _exceptions_defined_in(name)]


def test_the_walk_reaches_every_role_package() -> None:
    packages = {cls.__module__.split(".")[2] for cls in CHAIN_EXCEPTIONS}
    assert packages == {"api", "memory", "rpc"}


@pytest.mark.parametrize("exception", CHAIN_EXCEPTIONS, ids=lambda cls: cls.__qualname__)
def test_every_chain_exception_is_a_chain_error(exception: type[BaseException]) -> None:
    assert issubclass(exception, ChainError)
    assert issubclass(exception, FlareError)
