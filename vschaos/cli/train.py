"""``python train_model.py`` (vschaos2 syntax):

    python train_model.py --config-name dgt_mid name=my_training rundir=my_path +data.dataset.root=my_data
    python train_model.py --config-name demo data.dataset.root=my_data +check=1
    python train_model.py resume my_path/my_training [--checkpoint best] [trainer.max_epochs=20 ...]

Arguments after the config name are Hydra overrides. ``+key=value`` is accepted for keys the config already
has (vschaos2 wrote ``+data.dataset.root=``): single-``+`` overrides are passed to Hydra as ``++`` (set or add).
"""
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from vschaos.configs import CONFIG_DIR

DEFAULT_CONFIG = "dgt_mid"
USAGE = __doc__


def normalise_override(override: str) -> str:
    """``+key=value`` -> ``++key=value`` (Hydra refuses ``+`` for keys that exist); others unchanged."""
    if override.startswith("+") and not override.startswith("++"):
        return "+" + override
    return override


def parse_arguments(argv: Sequence[str]) -> Tuple[str, Path, List[str]]:
    """``(config_name, config_dir, overrides)`` from ``--config-name/-cn``, ``--config-dir/-cd`` and overrides."""
    config_name, config_dir, overrides = DEFAULT_CONFIG, CONFIG_DIR, []
    args = list(argv)
    index = 0
    while index < len(args):
        arg = args[index]
        for flags, kind in ((("--config-name", "-cn"), "name"), (("--config-dir", "-cd"), "dir")):
            if arg in flags or any(arg.startswith(flag + "=") for flag in flags):
                if "=" in arg:
                    value = arg.split("=", 1)[1]
                else:
                    if index + 1 >= len(args):
                        raise SystemExit(f"{arg} needs a value\n\n{USAGE}")
                    index += 1
                    value = args[index]
                if kind == "name":
                    config_name = value[:-5] if value.endswith(".yaml") else value
                else:
                    config_dir = Path(value).resolve()
                break
        else:
            if arg.startswith("-") and not arg.startswith("+"):
                raise SystemExit(f"unknown option {arg}\n\n{USAGE}")
            overrides.append(normalise_override(arg))
        index += 1
    return config_name, config_dir, overrides


def compose_config(config_name: str, overrides: Sequence[str], config_dir: Path = CONFIG_DIR) -> DictConfig:
    """Compose ``vschaos/configs/<config_name>.yaml`` with Hydra overrides (no Hydra output folder, no log files)."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3", job_name="vschaos_train"):
        return compose(config_name=config_name, overrides=[normalise_override(o) for o in overrides])


def _user_errors() -> Tuple[type, ...]:
    """Exceptions that mean "the user's config, dataset or run folder is wrong": reported in one message."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vschaos.data.metadata import DatasetError
    from vschaos.models.vae import ConfigurationError
    from vschaos.training.run import RunFolderError

    return DatasetError, RunFolderError, ConfigurationError, HydraException, OmegaConfBaseException


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``train_model.py``; returns the exit status (2 for a configuration, dataset or run-folder
    error, printed on stderr as one message without a traceback: it is the user's to fix, not a crash)."""
    try:
        return _main(argv)
    except _user_errors() as error:
        print(f"train_model.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except _training_failures() as error:  # diverged, disk full: one line, exit 1
        print(f"train_model.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def _training_failures() -> Tuple[type, ...]:
    from vschaos.models.lightning import NonFiniteTrainingError
    from vschaos.training.resume import TrainingError

    return NonFiniteTrainingError, TrainingError


def _main(argv: Optional[Sequence[str]]) -> int:
    from vschaos.training.fit import check, fit  # heavy imports after argument errors

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    resume = None
    if args and args[0] == "resume":
        from vschaos.training.resume import parse_resume_arguments, plan_resume

        resume = plan_resume(*parse_resume_arguments(args[1:]))  # checks everything, writes nothing
        cfg = resume.cfg
    else:
        config_name, config_dir, overrides = parse_arguments(args)
        cfg = compose_config(config_name, overrides, config_dir)
    if cfg.data.dataset.get("root") is None:
        raise SystemExit("no dataset: set data.dataset.root=PATH (or +data.dataset.root=PATH)")
    if cfg.get("check"):
        print(check(cfg))
        return 0
    version_dir = fit(cfg, resume)
    if version_dir is not None:  # None: debug=fast_dev_run, which keeps nothing (fit says so)
        print(f"run folder: {version_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
