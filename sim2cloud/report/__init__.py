"""The run report: one self-contained report.html per run (pictures embedded, no network, no server).

``collect`` gathers the document from what a run leaves on disk; ``render`` turns it into the page. Both are
stdlib only. ``sim2cloud report`` builds it from local artefacts; ``sim2cloud demo`` writes it last.
"""
