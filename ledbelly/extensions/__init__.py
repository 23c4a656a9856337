"""Extensions: hooks around each batch, registered as ``ledbelly.extensions`` entry points.

See ``base.py`` for the hooks and ``README.md`` ("Extensions") for enabling them.
"""

from ledbelly.extensions.base import (
    ENTRY_POINT_GROUP,
    Extension,
    ExtensionContext,
    ExtensionHost,
    available_extensions,
    load_extension,
)
from ledbelly.extensions.config import (
    EXTENSION_KEYS,
    ExtensionSettings,
    configured_extensions,
    extensions_from_dict,
    load_extension_settings,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXTENSION_KEYS",
    "Extension",
    "ExtensionContext",
    "ExtensionHost",
    "ExtensionSettings",
    "available_extensions",
    "configured_extensions",
    "extensions_from_dict",
    "load_extension",
    "load_extension_settings",
]
