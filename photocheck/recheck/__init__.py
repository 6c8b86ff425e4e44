"""The county's look-back re-check (回头看): every stored photo checked again under the
current policy and model, beside the old verdicts, until the county confirms.

* ``tables``  ``recheck_runs`` and ``photo_verdicts`` (migration 0007)
* ``runs``    ``Recheck``: start / pause / resume / confirm, the batch job, progress
* ``report``  the change report (households whose verdict changed) and its XLSX
"""
