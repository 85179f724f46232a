"""Using a trained run: its saved best-epoch model (--save-model) on the test set, on one
image, or exported to ONNX and checked against PyTorch with onnxruntime."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import ConfigError, TrainConfig
from .data import DATASETS, DataError, Dataset, load_dataset
from .data.custom import open_data_source
from .data.images import load_image
from .data.loader import Normalization
from .files import atomic_path
from .models import build_model
from .runs import RunDir, load_tensors
from .tasks import text_task, validate

EXPORT_FORMATS = ("onnx",)


@dataclass
class Trained:
    """A run's model in eval mode, with what it needs to read inputs."""

    run: RunDir
    cfg: TrainConfig
    model: torch.nn.Module
    data: Dataset  # for normalisation statistics and the test split
    class_names: tuple[str, ...]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> the float input the model was trained on (the training
        loader's own normalisation, the same floats)."""
        return Normalization(self.data.mean, self.data.std)(images)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities; ConfigError when the logits are not finite (weights that
        overflow): a prediction from them would be noise, or NaN."""
        with torch.no_grad():
            logits = self.model(self.normalize(images)).float()
        if not torch.isfinite(logits).all():
            raise ConfigError(f"{self.run.model_path}'s model gives logits that are not finite "
                              "(its weights overflow): there is nothing to predict with.")
        return torch.softmax(logits, dim=1)


def load_trained(run_dir: Path, data_dir: Path | None = None, data=None) -> Trained:
    """The saved model of the run in `run_dir`; ConfigError (one line) when the folder is
    no run, has no saved model, or its model does not load. A run trained on the user's
    own data reads it where its meta.json says (or from `data`, an opened DataSource, when
    the files moved); a changed file is refused by its recorded hash."""
    run = RunDir(Path(run_dir))
    run.check_files()  # RunFileError: a link, or a file where a folder should be
    cfg = run.read_config()
    if cfg is None:
        raise ConfigError(f"{run.path} is not a run folder (no readable config.json).")
    location = run.read_meta().get("data_source")
    if data is None and isinstance(location, str) and cfg.dataset not in DATASETS:
        data = open_data_source(location)
    validate(cfg, data)
    if text_task(cfg, data):
        raise ConfigError(f"{run.path} is a language model's run ({cfg.task}): predict and "
                          "export take image classifiers; its held-out loss is in epochs.csv.")
    if not run.model_path.is_file():
        raise ConfigError(f"{run.path} has no saved model: train it with --save-model (a run "
                          "that is already complete: with --save-model --restart).")
    spec = data.spec if data is not None else DATASETS[cfg.dataset]
    dataset = load_dataset(cfg.dataset, data_dir, spec)
    model = build_model(cfg.model, dataset.num_classes, dataset.input_shape[0])
    weights = load_tensors(run.model_path)  # RunFileError: unreadable, not tensors
    expected = model.state_dict()
    odd = next((k for k, v in weights.items() if isinstance(v, torch.Tensor) and k in expected
                and v.dtype != expected[k].dtype), None) if isinstance(weights, dict) else None
    if odd is not None:  # load_state_dict would cast it (complex to real, with a warning)
        raise ConfigError(f"{run.model_path}'s {odd} is {weights[odd].dtype}, not the model's "
                          f"{expected[odd].dtype}: it is not this run's model.")
    try:
        model.load_state_dict(weights)
    except Exception as error:  # weights of another model
        first = (str(error).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{run.model_path} does not load ({type(error).__name__}: "
                          f"{first}).") from None
    if not all(torch.isfinite(t).all() for t in model.state_dict().values()
               if t.is_floating_point()):
        raise ConfigError(f"{run.model_path} holds weights that are not finite (NaN or inf): "
                          "its run diverged before or at the epoch it saved; there is "
                          "nothing to predict with or export.")
    names = spec.class_names or tuple(map(str, range(dataset.num_classes)))
    return Trained(run, cfg, model.eval(), dataset, names)


def predict_test_images(trained: Trained, count: int):
    """The first `count` test images with their labels and predicted labels."""
    images, labels = trained.data.test.images[:count], trained.data.test.labels[:count]
    predicted = trained.probabilities(images).argmax(1)
    return images, labels, predicted


def read_image(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """An image file as uint8 (1, C, H, W) in the task's shape (grey or RGB, resized),
    opened as folder data sets' files are (data/images.py); ConfigError otherwise."""
    channels, height, width = shape
    try:
        image = load_image(path, "L" if channels == 1 else "RGB")
    except DataError as error:
        raise ConfigError(f"--image {error}") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())[None]


def classify(trained: Trained, path: Path, top: int = 5) -> list[tuple[str, float]]:
    """The `top` most probable classes of one image file, with their probabilities."""
    probabilities = trained.probabilities(read_image(path, trained.data.input_shape))[0]
    values, indices = probabilities.topk(min(top, len(probabilities)))
    return [(trained.class_names[i], float(p)) for p, i in zip(values, indices.tolist())]


def export_onnx(trained: Trained, out: Path, check_images: int = 64) -> float:
    """Writes the model as one self-contained ONNX file (weights inside, so the file alone
    can be copied and run) with a dynamic batch axis, then runs it with onnxruntime on
    test images and returns the largest absolute difference from PyTorch's logits."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ConfigError(f"export needs the optional packages ({error.name} is missing): "
                          "pip install 'warmup-bench[export]'.") from None

    # the exporter logs a line per missing torchvision operator (none is used here) and
    # warns about its own internals: neither concerns the user
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    example = trained.normalize(trained.data.test.images[:4])
    batch = torch.export.Dim("batch")
    with atomic_path(out) as tmp:  # renamed onto `out` only once the check has passed
        torch.onnx.export(trained.model, (example,), str(tmp), dynamo=True,
                          dynamic_shapes=({0: batch},), verbose=False, external_data=False)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        inputs = trained.normalize(trained.data.test.images[:check_images])
        onnx_logits = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
        with torch.no_grad():
            torch_logits = trained.model(inputs).numpy()
        # a difference that cannot be measured (NaN) is not a small one
        if not (np.isfinite(onnx_logits).all() and np.isfinite(torch_logits).all()):
            raise ConfigError(f"the model's logits are not finite on {trained.cfg.dataset}'s "
                              "test images: not exported.")
    return float(np.abs(onnx_logits - torch_logits).max())
