"""TensorBoard monitors (audio reconstructions, spectrogram images of validation frames) and a CPU-time budget."""
import time
from typing import TYPE_CHECKING, Dict, Optional

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ReconstructionMonitor(L.Callback):
    """Every ``every_n_epochs`` validation epochs, log the first ``n_frames`` validation frames as audio (original
    magnitude and model reconstruction, both with the same phase ``method``) and as a spectrogram image.

    Defaults: every_n_epochs 5, n_frames 128, method ``"pghi"`` (non-iterative: cheap). Frames are taken from the
    first validation batch, which the data module serves in file order, so they are consecutive.
    """

    def __init__(self, every_n_epochs: int = 5, n_frames: int = 128, method: str = "pghi"):
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.n_frames = n_frames
        self.method = method
        self._example: Optional[Dict] = None

    def _first_frames(self, trainer: L.Trainer) -> Optional[Dict]:
        if self._example is None:
            datamodule = getattr(trainer, "datamodule", None)
            if datamodule is None:
                return None
            batch = next(iter(datamodule.val_dataloader()), None)
            if batch is None:
                return None
            labels = {task: value[: self.n_frames] for task, value in batch.get("labels", {}).items()}
            self._example = {"magnitude": batch["magnitude"][: self.n_frames], "labels": labels}
            if "f0" in batch:  # a model that reads its f0 from a longer window than its frames
                self._example["f0"] = batch["f0"][: self.n_frames]
        return self._example

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.every_n_epochs <= 0:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 or not isinstance(trainer.logger, TensorBoardLogger):
            return
        example = self._first_frames(trainer)
        if example is None:
            return
        transform = pl_module.vae.transform
        magnitude = example["magnitude"].to(pl_module.device)
        labels = {task: value.to(pl_module.device) for task, value in example["labels"].items()}
        was_training = pl_module.training
        pl_module.eval()
        f0 = example["f0"].to(pl_module.device) if "f0" in example else None
        estimate = pl_module.reconstruct_magnitude(magnitude, labels, f0)
        pl_module.train(was_training)
        writer = trainer.logger.experiment
        step = trainer.global_step
        image = spectrogram_image(magnitude, estimate, int(transform.sample_rate), int(transform.hop))
        writer.add_image("spectrogram/original_vs_reconstruction", image, step, dataformats="HWC")
        overlap = transform.n_fft // transform.hop - 1
        n_frames = magnitude.shape[0]
        if n_frames > overlap:
            length = (n_frames - overlap) * transform.hop  # num_frames(length) == n_frames
            for tag, mag in (("original", magnitude), ("reconstruction", estimate)):
                audio = transform.reconstruct(mag.detach().cpu().float(), length, method=self.method)
                writer.add_audio(f"audio/{tag}", audio.clamp(-1, 1).unsqueeze(0), step,
                                 sample_rate=transform.sample_rate)


def spectrogram_figure(original: Tensor, estimate: Tensor, sample_rate: int, hop: int) -> "Figure":
    """Two magnitude spectrograms ``(frames, bins)`` side by side, drawn like the trajectory PNGs
    (:func:`vschaos.dsp.display.draw_spectrogram`): seconds, Hz, dB, one colour scale for both (the
    original's peak down 80 dB) and its colour bar, so they compare at a glance."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vschaos.dsp.display import draw_spectrogram, magnitude_db

    figure = Figure(figsize=(9, 3.2), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    top_db = float(magnitude_db(original).max())
    image = None
    for axis, (title, mag) in zip(axes, (("original", original), ("reconstruction", estimate))):
        image = draw_spectrogram(axis, mag, sample_rate, hop, vmax_db=top_db)
        axis.set_title(title)
    axes[1].set_ylabel("")
    figure.colorbar(image, ax=list(axes), label="dB", fraction=0.04, pad=0.01)
    return figure


def spectrogram_image(original: Tensor, estimate: Tensor, sample_rate: int, hop: int) -> np.ndarray:
    """:func:`spectrogram_figure` as an RGB uint8 image (height, width, 3) for TensorBoard."""
    figure = spectrogram_figure(original, estimate, sample_rate, hop)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


class CPUTimeBudget(L.Callback):
    """Stop training once the training process has used ``seconds`` of CPU time (all its threads,
    ``time.process_time``) since the fit started: a budget that means the same amount of work on a
    quiet or a busy machine (wall-clock limits do not). Checked after every training batch; the
    epoch in progress ends there and the last checkpoint is written as usual.

    Enable it from the command line: ``+callbacks.cpu_budget._target_=vschaos.training.callbacks.CPUTimeBudget
    +callbacks.cpu_budget.seconds=1800`` (15 minutes on 2 threads).
    """

    def __init__(self, seconds: float):
        super().__init__()
        if not seconds > 0:
            raise ValueError(f"CPUTimeBudget: seconds must be > 0, got {seconds}")
        self.seconds = float(seconds)
        self._start: Optional[float] = None
        self.used = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.process_time()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: object,
                           batch_idx: int) -> None:
        if self._start is None:
            self._start = time.process_time()
        self.used = time.process_time() - self._start
        if self.used >= self.seconds:
            trainer.should_stop = True
