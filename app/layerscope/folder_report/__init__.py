"""Explain a folder: every image's maps at every requested layer, scored as ``rank`` scores
one photo, resumable, summarised over the folder and laid out as one offline HTML page.

``FolderReport(ReportRequest(...)).run()`` is the whole job (the CLI's ``report`` adapts
it); ``evidence.BatchExplainer`` is the per-batch function both engines run.
"""

from layerscope.folder_report.runner import FolderReport, ModelArgs, ReportRequest

__all__ = ["FolderReport", "ModelArgs", "ReportRequest"]
