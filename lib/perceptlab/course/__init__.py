"""Course tooling: homework grading, notebook reports and claims, the seed spread, the torchvision hook.
"""

__all__: list[str] = []
