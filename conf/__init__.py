"""Configuration presets (YAML): `train/<name>.yaml` for `panst3r train --config NAME`.

A package only so that a checkout (the repository root on the path, or an editable install) and an
installed wheel find the presets the same way: `importlib.resources.files("conf")`.
"""
