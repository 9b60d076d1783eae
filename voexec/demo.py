"""Demo data for `voexec serve --demo`: three simulated platforms (and, later, a sample catalogue).

The platforms match `voexec.example.yaml`, so what a newcomer sees is what the example documents.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.settings import Settings, settings_from_mapping

DEMO_PLATFORMS: list[dict[str, Any]] = [
    {
        "name": "alpha",
        "description": "GPU cluster for deep-learning inference",
        "capacity": {
            "cores": 64,
            "memory": 512,
            "storage": 2000,
            "gpus": [
                {"model": "A100", "memory": 80, "count": 4, "compute_capability": 8.0},
                {"model": "A10", "memory": 24, "count": 4, "compute_capability": 8.6},
            ],
        },
        "executables": ["docker-container", "singularity-container", "python-program"],
        "limits": {"cores": 32, "memory": 256, "gpus": 4, "duration": "P2D"},
        "cost": {"core_hour": 0.05, "gib_hour": 0.005, "gpu_hour": 1.2, "unit": "EUR"},
        "preparation": "PT2M",
        "simulated": {"prepare": "PT2S", "release": "PT1S"},
    },
    {
        "name": "beta",
        "description": "Science platform for notebooks and containers",
        "capacity": {"cores": 32, "memory": 128},
        "executables": ["docker-container", "jupyter-notebook", "python-program"],
        "limits": {"cores": 16, "memory": 64, "duration": "PT12H"},
        "cost": {"core_hour": 0.02, "gib_hour": 0.002, "unit": "EUR"},
        "preparation": "PT30S",
        "simulated": {"prepare": "PT1S", "release": "PT1S", "run": "PT10S"},
    },
    {
        "name": "gamma",
        "description": "HPC partition with Singularity",
        "capacity": {"cores": 256, "memory": 1024},
        "executables": ["singularity-container", "docker-container"],
        "limits": {"cores": 128, "memory": 512, "duration": "P3D"},
        "cost": {"core_hour": 1.0, "unit": "core-hours"},
        "preparation": "PT5M",
    },
]


def with_demo(settings: Settings) -> Settings:
    """The same settings with the demo switched on and demo platforms if none are configured."""
    data = msgspec.to_builtins(settings)
    data["catalogue"]["demo"] = True
    if not data["broker"]["platforms"]:
        data["broker"]["platforms"] = DEMO_PLATFORMS
    return settings_from_mapping(data)
