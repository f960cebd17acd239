"""Reading a config file (YAML or JSON) into a mapping: the first step of every config reader.

Standard library and PyYAML only, so the command line can refuse a config that is not a
readable mapping before PyTorch and MONAI are imported (:mod:`autocontour.jobs.checks`); the
typed readers (:func:`autocontour.artifacts.config.config_from_yaml`) start from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autocontour.errors import InvalidInputError


def read_config_mapping(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping (an empty file is an empty mapping).

    Raises:
        InvalidInputError: unreadable, not YAML or JSON, or not a mapping; naming the file.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the config ({exc.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"{path}: not valid YAML or JSON ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: config must be a mapping, got {data!r}")
    return data
