"""Sysmon XML configuration: loading, validation, model, `sysmon -c` dump and lint.

Public entry points are re-exported here; see loader.py for the loading pipeline.
"""

from filterd.config.errors import ConfigError
from filterd.config.loader import default_config, describe_load, load_config, load_config_bytes
from filterd.config.model import Config

__all__ = ["Config", "ConfigError", "default_config", "describe_load", "load_config", "load_config_bytes"]
