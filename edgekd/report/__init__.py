"""Reports: a benchmark's JSON / Markdown (``document``) and HTML page (``html``, ``svg``), the comparison
of two reports (``compare``) and pages rendered again from a report file (``rerender``)."""

from edgekd.utils.lazy import lazy_attributes

_NAMES = {
    "compare": ("edgekd.report.comparison", "compare"),
    "load_report": ("edgekd.report.comparison", "load_report"),
    "write_report": ("edgekd.report.document", "write"),
}
_MODULES = ("comparison", "document", "html", "rows", "svg")

__all__ = list(_NAMES)

__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)
