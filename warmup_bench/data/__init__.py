"""Data sets read from their standard files, held on the device, augmented in batches."""

from .augment import AUGMENTATIONS, CropFlip, RotateTranslate, affine
from .catalog import (
    DATASETS,
    DEBIAN_FASHION_MNIST,
    Dataset,
    DatasetSpec,
    Split,
    default_data_dir,
    folder_size,
    get_spec,
    load_dataset,
    locate,
    pixel_statistics,
)
from .download import download
from .images import image_info, load_image, open_regular
from .loader import BatchLoader, epoch_generator, split_train_val
from .readers import DataError, read_cifar_binary, read_cifar_pickle, read_idx
from .text import SHAKESPEARE, TextDataset, TextLoader, is_text
from .verify import check_dataset, md5_of, sha256_of

DATASETS["shakespeare"] = SHAKESPEARE

__all__ = [
    "AUGMENTATIONS", "CropFlip", "RotateTranslate", "affine", "DATASETS", "Dataset",
    "DEBIAN_FASHION_MNIST",
    "DatasetSpec", "Split", "check_dataset", "folder_size", "default_data_dir", "get_spec",
    "load_dataset", "locate", "pixel_statistics", "image_info", "load_image", "open_regular",
    "download", "md5_of", "sha256_of", "BatchLoader", "epoch_generator", "split_train_val",
    "DataError", "TextDataset", "TextLoader", "is_text",
    "read_cifar_binary", "read_cifar_pickle", "read_idx",
]
