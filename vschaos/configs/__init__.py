"""The Hydra configs, shipped inside the package (``vschaos/configs/``) so that a wheel or a non-editable
install finds them from any directory. ``<preset>.yaml`` at the top are the presets by their vschaos2 names
(each is ``base.yaml`` with ``experiment/<preset>.yaml`` over it); the folders are Hydra config groups."""
from pathlib import Path
from typing import List

CONFIG_DIR = Path(__file__).resolve().parent


def preset_names(config_dir: Path = CONFIG_DIR) -> List[str]:
    """Names usable as ``--config-name``: the ``*.yaml`` files at the top of ``config_dir``, sorted."""
    return sorted(path.stem for path in Path(config_dir).glob("*.yaml"))

