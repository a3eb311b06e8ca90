"""Importing datasets into the contact graph: column mappings, validation, batched atomic writes.

See ``README.md`` in this package for the mapping language.
"""

from .loader import FileReport, ImportReport, import_files, resolve_paths
from .mapping import Mapping, MappingError, adhoc_mapping, bundled_mapping, bundled_mapping_names, load_mapping

__all__ = [
    "FileReport",
    "ImportReport",
    "Mapping",
    "MappingError",
    "adhoc_mapping",
    "bundled_mapping",
    "bundled_mapping_names",
    "import_files",
    "load_mapping",
    "resolve_paths",
]
