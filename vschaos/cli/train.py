"""``python train_model.py`` / ``vschaos-train``: a Hydra application (vschaos2 command lines still work).

    python train_model.py --config-name dgt_mid name=my_training rundir=my_path +data.dataset.root=my_data
    python train_model.py --config-name demo data.dataset.root=my_data +check=1
    python train_model.py --config-name demo data.dataset.root=my_data module.optimizer.lr=1e-3,2e-3 -m
    python train_model.py --config-name demo --cfg job            # print the composed config, train nothing
    python train_model.py --config-name auto data.dataset.root=my_data   # dgt_harmonic or dgt_mid, from the data
    python train_model.py resume my_path/my_training [--checkpoint best] [trainer.max_epochs=20 ...]
    python train_model.py prior my_path/my_training [--checkpoint best] [hidden=128 max_epochs=50 ...]

Everything after the program name is Hydra's command line (``--config-name``, ``--config-dir``, ``-m``/``--multirun``,
``--cfg``, ``--info``, ``--help``, overrides), with three vschaos additions:
  * ``+key=value`` also sets a key the config already has (vschaos2 wrote ``+data.dataset.root=``): a single ``+``
    is passed to Hydra as ``++`` (set or add);
  * ``resume RUN [key=value ...]`` continues a run from its own saved config (not a Hydra command line);
  * ``prior RUN [key=value ...]`` fits a latent prior (options: ``vschaos.training.prior.PRIOR_DEFAULTS``) into
    the run's version folder, so that the export can ``generate`` with no input;
  * an unknown ``--config-name`` lists the presets that exist;
  * ``--config-name auto`` (or ``experiment=auto``) looks at the dataset first (``vschaos.pitch.recommend``),
    prints one line saying which preset it picked and why, and trains that preset; the pick and its reason are
    kept in the run's ``config.yaml`` (``auto_preset``), so ``resume`` never picks again.
A run lives in ``rundir/name/version_N``; a sweep (``-m``) writes one version per job there. ``hydra.run.dir=DIR``
(``hydra.sweep.dir=DIR`` with ``-m``) puts the versions in ``DIR/version_N`` instead. Hydra writes no log file and
no ``.hydra/`` folder: each version holds its own ``config.yaml``.
"""
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from vschaos.configs import CONFIG_DIR, preset_names

DEFAULT_CONFIG = "dgt_mid"
AUTO_PRESET = "auto"  # --config-name auto / experiment=auto: picked from the dataset (resolve_auto_preset)
USAGE = __doc__
PROG = "train_model.py"
# Hydra's own options that take a value (the value is not an override)
_VALUE_OPTIONS = ("--config-name", "-cn", "--config-dir", "-cd", "--config-path", "-cp", "--cfg", "-c",
                  "--package", "-p", "--experimental-rerun")


class UserError(Exception):
    """A problem with the command line that the user fixes (one line on stderr, exit status 2)."""


def normalise_override(override: str) -> str:
    """``+key=value`` -> ``++key=value`` (Hydra refuses ``+`` for keys that exist); others unchanged."""
    if override.startswith("+") and not override.startswith("++"):
        return "+" + override
    return override


def _option_value(args: Sequence[str], index: int) -> Tuple[Optional[str], Optional[str], int]:
    """``(flag, value, next_index)`` for a Hydra option with a value at ``args[index]`` (``(None, None, index + 1)``
    otherwise); accepts ``--flag value`` and ``--flag=value``."""
    arg = args[index]
    for flag in _VALUE_OPTIONS:
        if arg == flag:
            return flag, (args[index + 1] if index + 1 < len(args) else None), index + 2
        if arg.startswith(flag + "="):
            return flag, arg.split("=", 1)[1], index + 1
    return None, None, index + 1


def split_command_line(argv: Sequence[str]) -> Tuple[str, List[Path], List[str], List[str]]:
    """``(config_name, extra_config_dirs, overrides, normalised_argv)`` of a training command line.

    ``overrides`` are the positional ``key=value`` arguments with ``+key`` normalised to ``++key``;
    ``normalised_argv`` is ``argv`` with the same normalisation (what Hydra is given).
    """
    config_name, config_dirs, overrides, normalised = DEFAULT_CONFIG, [], [], []
    index = 0
    while index < len(argv):
        flag, value, next_index = _option_value(argv, index)
        if flag is not None:
            if value is None:
                raise UserError(f"{flag} needs a value")
            if flag in ("--config-name", "-cn"):
                config_name = value[:-5] if value.endswith(".yaml") else value
            elif flag in ("--config-dir", "-cd"):
                config_dirs.append(Path(value))
            normalised.extend(argv[index:next_index])
        elif argv[index].startswith("-") and not argv[index].startswith("+"):
            normalised.append(argv[index])  # a Hydra flag without a value (-m, --info, --help, ...): Hydra checks it
        else:
            overrides.append(normalise_override(argv[index]))
            normalised.append(overrides[-1])
        index = next_index
    return config_name, config_dirs, overrides, normalised


def check_config_name(config_name: str, config_dirs: Sequence[Path] = ()) -> None:
    """Raise :class:`UserError` listing the presets when ``config_name`` is not one (Hydra would only say that it
    is not in the search path)."""
    known = set(preset_names())
    for directory in config_dirs:
        known.update(preset_names(directory))
    if config_name not in known:
        where = ", ".join([str(CONFIG_DIR)] + [str(d) for d in config_dirs])
        raise UserError(f"unknown preset {config_name!r} (--config-name); presets: {', '.join(sorted(known))} "
                        f"(in {where}), or {AUTO_PRESET} (picked from the dataset)")


def check_override_syntax(overrides: Sequence[str]) -> None:
    """Raise :class:`UserError` for an override Hydra cannot parse (before Hydra reports it with a stack hint)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as error:
        raise UserError(f"OverrideParseException: {error}") from None


def _is_auto(name) -> bool:
    return isinstance(name, str) and name.strip().lower() == AUTO_PRESET


def _override_values(overrides: Sequence[str]) -> dict:
    """``{key: parsed override}`` of Hydra overrides (the last one of a key wins)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {o.key_or_group: o for o in OverridesParser.create().parse_overrides(list(overrides))}


def _quoted(text: str) -> str:
    """``text`` as a single-quoted Hydra override value."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_auto_preset(config_name: str, overrides: Sequence[str], measure: bool = True):
    """``(config_name, overrides, recommendation)`` with ``auto`` (``--config-name auto`` or ``experiment=auto``)
    replaced by the preset :func:`vschaos.pitch.recommend.recommend_dataset` picks for ``data.dataset.root``, and
    ``++auto_preset.picked=...`` / ``++auto_preset.reason=...`` added so that the run's config records both. Not
    auto: everything as given and ``None``. ``measure=False`` (``--help``): ``dgt_mid`` without looking. Raises
    :class:`UserError` without a single dataset root, or when the dataset cannot be sampled."""
    values = _override_values(overrides)
    experiment = values.get("experiment")
    from_experiment = experiment is not None and not experiment.is_sweep_override() and _is_auto(experiment.value())
    if not (_is_auto(config_name) or from_experiment):
        return config_name, list(overrides), None
    what = "experiment=auto" if from_experiment else "--config-name auto"
    root = values.get("data.dataset.root")
    if measure and root is None:
        raise UserError(f"{what} picks the preset from the dataset: set data.dataset.root=PATH")
    if measure and (root.is_sweep_override() or root.value() is None):
        raise UserError(f"{what} needs one dataset root, got {root.input_line}")
    recommendation, picked = None, DEFAULT_CONFIG
    if measure:  # the tracker loads torch: only now
        from vschaos.pitch.recommend import RecommendError, recommend_dataset
        from vschaos.threads import apply_thread_policy

        threads = values.get("threads")
        try:  # before torch loads for the tracker, as train() would
            apply_thread_policy("auto" if threads is None else threads.value())
        except ValueError as error:
            raise UserError(f"threads={threads.value() if threads else None}: {error}") from None
        try:
            recommendation = recommend_dataset(str(root.value()))
        except RecommendError as error:
            raise UserError(f"{what}: {error}") from None
        picked = recommendation.preset
    kept = [o for o in overrides if not (from_experiment and o.lstrip("+").split("=", 1)[0] == "experiment")]
    if from_experiment:
        kept.append(f"experiment={picked}")
    if recommendation is not None:
        kept += [f"++auto_preset.picked={picked}", f"++auto_preset.reason={_quoted(recommendation.reason)}"]
    return (config_name if from_experiment else picked), kept, recommendation


def compose_config(config_name: str, overrides: Sequence[str], config_dir: Path = CONFIG_DIR):
    """Compose ``vschaos/configs/<config_name>.yaml`` with Hydra overrides, as the command line would (no Hydra
    output folder, no log files). For tests, benchmarks and notebooks."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3", job_name="vschaos_train"):
        return compose(config_name=config_name, overrides=[normalise_override(o) for o in overrides])


def _user_errors() -> Tuple[type, ...]:
    """Exceptions that mean "the user's config, dataset or run folder is wrong": reported in one message."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vschaos.data.metadata import DatasetError
    from vschaos.models.vae import ConfigurationError
    from vschaos.training.run import RunFolderError

    return UserError, DatasetError, RunFolderError, ConfigurationError, HydraException, OmegaConfBaseException


def _report(error: BaseException) -> int:
    kind = "" if isinstance(error, UserError) else f"{type(error).__name__}: "
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line (Hydra's: 3)
    print(f"{PROG}: {kind}{message}", file=sys.stderr)
    return 2


def _training_failures() -> Tuple[type, ...]:
    """Training that started and failed for a reason that is not a bug (diverged, disk full, the run folder held
    by another training or not writable): one line, exit 1."""
    from vschaos.models.lightning import NonFiniteTrainingError
    from vschaos.training.resume import TrainingError

    return NonFiniteTrainingError, TrainingError


INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _interrupted(error: KeyboardInterrupt) -> int:
    """Ctrl-C: one line (what was kept, from :class:`TrainingInterrupted`), no traceback."""
    print(f"{PROG}: {error or 'interrupted (Ctrl-C)'}", file=sys.stderr)
    return INTERRUPTED_STATUS


# Lightning's messages that tell the user nothing about their run: advertising tips, and the deprecation of a
# torch class that Lightning itself uses (fixed upstream, not ours or the user's to act on)
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
_LIGHTNING_TIP = "\U0001f4a1 Tip:"
_LEAFSPEC_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"


def _not_a_tip(record) -> bool:
    return not str(record.msg).startswith(_LIGHTNING_TIP)


def quiet_lightning() -> None:
    """Drop Lightning's tips, its LeafSpec deprecation warning and its "checkpoint directory is not empty" on
    resume from this process's output (idempotent)."""
    import logging
    import warnings

    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_not_a_tip)
    warnings.filterwarnings("ignore", message=_LEAFSPEC_DEPRECATION, category=FutureWarning)
    # a resume writes into its own checkpoints/ folder on purpose (a new run always gets an empty version_N)
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")


def train(cfg, resume=None) -> int:
    """Apply the thread policy, then ``+check=1`` (print the check report) or train; returns the exit status."""
    from vschaos.threads import apply_thread_policy

    try:
        threads = apply_thread_policy(cfg.get("threads", 1))
    except ValueError as error:
        raise UserError(f"threads={cfg.get('threads')}: {error}") from None
    if str(cfg.get("threads", 1)).lower() == "auto":
        print(f"threads=auto: training with {threads} CPU thread(s), the cores idle now (threads=N to choose)")
    quiet_lightning()
    from vschaos.training.fit import check, fit  # after the thread policy: torch reads it when it loads

    if cfg.data.dataset.get("root") is None:
        raise UserError("no dataset: set data.dataset.root=PATH (or +data.dataset.root=PATH)")
    if cfg.get("check"):
        print(check(cfg))
        return 0
    version_dir = fit(cfg, resume)
    if version_dir is not None:  # None: debug=fast_dev_run, which keeps nothing (fit says so)
        print(f"run folder: {version_dir}")
    return 0


def train_prior(args: Sequence[str]) -> int:
    """``prior RUN [--checkpoint NAME] [key=value ...]``: fit the run's latent prior; prints what was written."""
    from vschaos.threads import apply_thread_policy
    from vschaos.training.resume import parse_resume_arguments

    if not args or args[0].startswith("-"):
        raise UserError("prior needs a run folder: train_model.py prior RUN [--checkpoint NAME] [key=value ...]")
    run, checkpoint, overrides = parse_resume_arguments(args)
    apply_thread_policy(1)
    quiet_lightning()
    from vschaos.training.prior import fit_prior, prior_options

    prior_options(overrides)  # a wrong option is refused before the run is opened
    print(fit_prior(run, checkpoint, overrides).format())
    return 0


def _run_folder_from_hydra(cfg) -> None:
    """Honour ``hydra.run.dir`` / ``hydra.sweep.dir``: when the job's output folder is neither the working directory
    (the default: Hydra then creates nothing) nor ``rundir/name``, it becomes the run folder (rundir and name
    follow it)."""
    import os

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    default = Path(os.path.abspath(Path(str(cfg.rundir)) / str(cfg.name)))
    if output_dir in (Path.cwd(), default):
        return
    with open_dict(cfg):
        cfg.rundir, cfg.name = str(output_dir.parent), output_dir.name


def _hydra_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        print(f"[sweep] job {hydra_cfg.job.num}: {' '.join(hydra_cfg.overrides.task)}", flush=True)
    _run_folder_from_hydra(cfg)
    try:
        status = train(cfg)
    except _user_errors() as error:
        status = _report(error)
    except _training_failures() as error:  # diverged, disk full, run folder busy or read-only
        status = _report(error) - 1
    except KeyboardInterrupt as error:  # Hydra lets it through; exit status 130
        status = _interrupted(error)
    if status:
        raise SystemExit(status)  # Hydra lets SystemExit through: the command's exit status


def _run_hydra_app(argv: List[str]) -> int:
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    program = sys.argv[0] if sys.argv else PROG
    # Hydra reads sys.argv; Lightning's DDP launcher re-runs sys.argv for ranks > 0 (with the same normalisation)
    sys.argv = [program, *argv]
    app = hydra.main(version_base="1.3", config_path="pkg://vschaos.configs", config_name=DEFAULT_CONFIG)(_hydra_task)
    try:
        app()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        GlobalHydra.instance().clear()  # a later compose (tests, notebooks) starts afresh
    return 0


def _with_preset(normalised: Sequence[str], config_name: str, new_overrides: Sequence[str]) -> List[str]:
    """Hydra's argv with the overrides replaced by ``new_overrides`` and ``--config-name`` set to ``config_name``."""
    out, index = [], 0
    while index < len(normalised):
        flag, _, next_index = _option_value(normalised, index)
        if flag in ("--config-name", "-cn"):
            out += ["--config-name", config_name]
        elif flag is not None or (normalised[index].startswith("-") and not normalised[index].startswith("+")):
            out += normalised[index:next_index]
        index = next_index
    if "--config-name" not in out:
        out = ["--config-name", config_name] + out
    return out + list(new_overrides)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``train_model.py``; returns the exit status (2 for a configuration, dataset or run-folder
    error, printed on stderr as one message without a traceback: it is the user's to fix, not a crash)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "resume":
            from vschaos.training.resume import parse_resume_arguments, plan_resume

            resume = plan_resume(*parse_resume_arguments(args[1:]))  # checks everything, writes nothing
            return train(resume.cfg, resume)
        if args and args[0] == "prior":
            return train_prior(args[1:])
        config_name, config_dirs, overrides, normalised = split_command_line(args)
        helping = any(flag in args for flag in ("--help", "-h", "--hydra-help"))
        check_override_syntax(overrides)
        picked, picked_overrides, recommendation = resolve_auto_preset(config_name, overrides, measure=not helping)
        if (picked, picked_overrides) != (config_name, overrides):
            normalised = _with_preset(normalised, picked, picked_overrides)
            config_name, overrides = picked, picked_overrides
        if recommendation is not None:
            print(recommendation.line(), flush=True)
        if not helping:
            check_config_name(config_name, config_dirs)
    except _user_errors() as error:
        return _report(error)
    except _training_failures() as error:  # diverged, disk full, run folder busy or read-only (resume)
        return _report(error) - 1
    except KeyboardInterrupt as error:
        return _interrupted(error)
    return _run_hydra_app(normalised)


if __name__ == "__main__":
    sys.exit(main())
