"""Vision heads prompted by task-token hidden states: detection boxes and 2D/3D segmentation masks."""

from engine.heads.detection import DetectionHead, normalized_xyxy
from engine.heads.segmentation import SegmentationHead2D, SegmentationHead3D

__all__ = ["DetectionHead", "SegmentationHead2D", "SegmentationHead3D", "normalized_xyxy"]
