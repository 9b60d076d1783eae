"""One adapter per platform technology, each implementing `broker.platforms.port.Platform`.

`simulated` runs nothing (demo, tests); `local` runs sessions as processes of this machine;
`slurm` submits them as batch jobs to a Slurm cluster. `build_platform` picks the adapter a
platform's settings name; docs/platforms.md describes each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from broker.platforms.port import Platform
    from core.settings import PlatformSettings

__all__ = ["build_platform"]


def build_platform(settings: PlatformSettings, data_dir: str | Path) -> Platform:
    """The adapter `settings.adapter` names, for one configured platform.

    Args:
        settings: the platform's settings.
        data_dir: voexec's data directory (real platforms keep session folders under it
            unless their settings say otherwise).

    Raises:
        ConfigError: the adapter is not available, or its settings do not work here.
    """
    match settings.adapter:
        case "simulated":
            from broker.platforms.simulated import SimulatedPlatform

            return SimulatedPlatform(settings)
        case "local":
            from broker.platforms.local import LocalPlatform

            return LocalPlatform(settings, data_dir)
        case "slurm":
            from broker.platforms.slurm import SlurmPlatform

            return SlurmPlatform(settings, data_dir)
        case "remote":
            from broker.platforms.remote import RemotePlatform

            return RemotePlatform(settings)
        case _:
            raise ConfigError(
                f"setting broker.platforms[{settings.name}].adapter: {settings.adapter!r} is not "
                "available in this version; use simulated, local, slurm or remote"
            )
