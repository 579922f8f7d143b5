"""One error tree: every exception class of our packages derives from `MessageHooksError`.

The walk imports every module of every package (no `__main__`), then looks at every subclass of
`BaseException` that any of them defined, nested ones included.
"""

import functools
import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType

from messagehooks import errors
from messagehooks.errors import MessageHooksError

PACKAGES = ("messagehooks", "features", "ingest", "streams", "dataset", "devtools", "cli", "docgen")


def _modules() -> Iterator[ModuleType]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                yield importlib.import_module(info.name)


def _subclasses(root: type[BaseException]) -> Iterator[type[BaseException]]:
    for cls in root.__subclasses__():
        yield cls
        yield from _subclasses(cls)


@functools.cache
def _ours() -> dict[str, type[BaseException]]:
    modules = list(_modules())
    assert len(modules) > 50  # the walk reached every package
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for cls in _subclasses(BaseException)
        if cls.__module__.split(".")[0] in PACKAGES
    }


def test_every_exception_of_ours_is_in_the_tree():
    ours = _ours()
    assert "features.training.NotEnoughData" in ours  # defined outside errors.py, still found
    outside = sorted(name for name, cls in ours.items() if not issubclass(cls, MessageHooksError))
    assert outside == []


def test_the_tree_in_the_docstring_names_every_one():
    assert errors.__doc__ is not None
    missing = sorted(name for name, cls in _ours().items() if cls.__name__ not in errors.__doc__)
    assert missing == []
