"""Training data: samples, readers (synthetic shapes, plain folders, SACap-1M) and length buckets."""

from .buckets import BucketBatchSampler, bucket_flag
from .folder import FolderDataset
from .position import SkipBatches
from .sacap import SACapDataset, rle_counts, rle_decode
from .sample import Robust, Sample, collate_samples, make_sample, nearest_exact_index, resize_image, resize_masks, resize_sample
from .synthetic import Shape, SyntheticShapes, background_colours, colour_map, map_colour, palette, shape_mask, texture_pattern

__all__ = [
    "BucketBatchSampler",
    "FolderDataset",
    "Robust",
    "SACapDataset",
    "Sample",
    "Shape",
    "SkipBatches",
    "SyntheticShapes",
    "background_colours",
    "bucket_flag",
    "collate_samples",
    "colour_map",
    "make_sample",
    "map_colour",
    "nearest_exact_index",
    "palette",
    "resize_image",
    "resize_masks",
    "resize_sample",
    "rle_counts",
    "rle_decode",
    "shape_mask",
    "texture_pattern",
]
