"""Every public function, class and method of the package says what it is (inherited docstrings
count: an override of a documented method, e.g. `forward`, need not repeat it)."""

import importlib
import inspect
import pkgutil

import vidrec


def _public_objects():
    for info in pkgutil.walk_packages(vidrec.__path__, "vidrec."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (
                        inspect.isfunction(member) or isinstance(member, property)
                    ):
                        continue
                    yield f"{module.__name__}.{name}.{attr}", getattr(obj, attr)


def test_every_public_object_has_a_docstring():
    objects = dict(_public_objects())

    def undocumented(obj) -> bool:  # a dataclass's generated signature is not a docstring
        doc = inspect.getdoc(obj)
        return not doc or (inspect.isclass(obj) and doc.startswith(obj.__name__ + "("))

    missing = sorted(name for name, obj in objects.items() if undocumented(obj))
    print(f"\n{len(objects)} public functions, classes and methods; {len(missing)} without a docstring")
    assert not missing, missing


def test_the_package_entry_points_are_documented():
    for name in vidrec.__all__:
        if name != "__version__":
            assert len(inspect.getdoc(getattr(vidrec, name)) or "") > 40, name


def test_the_readmes_architecture_counts_are_the_registrys():
    """The README's "all N classifiers, M pretraining architectures and K AVA detectors" is what
    `vidrec.list_models()` holds."""
    import os
    import re

    text = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    found = re.search(r"all (\d+) classifiers, (\d+) pretraining architectures and (\d+) AVA detectors", text)
    assert found, "the README no longer states the counts"
    names = vidrec.list_models()
    pretraining = [n for n in names if n.endswith("_pretrain")]
    detectors = [n for n in names if n.endswith("_ava")]
    counts = (len(names) - len(pretraining) - len(detectors), len(pretraining), len(detectors))
    assert tuple(int(g) for g in found.groups()) == counts
