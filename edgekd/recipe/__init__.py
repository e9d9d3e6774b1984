"""YAML recipes: the schema that mirrors the Python API (``schema``) and a recipe run to its end (``launch``)."""

from edgekd.utils.lazy import lazy_attributes

_NAMES = {
    **{name: ("edgekd.recipe.schema", name) for name in ("ModelSpec", "Recipe", "load", "parse", "build_model")},
    "run_recipe": ("edgekd.recipe.launch", "run_recipe"),
}
_MODULES = ("launch", "schema")

__all__ = list(_NAMES)

__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)
