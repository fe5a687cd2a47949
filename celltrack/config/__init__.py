"""Typed configuration: the :class:`Config` base, file I/O, and every stage's config model.

Nothing here imports torch: ``celltrack config init`` and a user who only edits configs
never pay for the deep-learning stack. The stage configs live in this package's modules
(one file per stage); their stage packages re-export them.
"""

from celltrack.config.base import Config, config_from_dict, load_config, save_config

__all__ = ["Config", "config_from_dict", "load_config", "save_config"]
