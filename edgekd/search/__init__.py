"""Meeting a budget (MACs, size or latency) by pruning: the budget itself (``budget``), a NetAdapt-style
search (``netadapt``) and a per-layer latency table (``latency_table``).

Measuring a file needs export and the benchmark, which sit above this layer: the Pipeline hands them in
through :class:`~edgekd.search.budget.Measurement` on the run context.
"""
