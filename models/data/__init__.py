"""Datasets: the COCO/VOC converters, the offline sample dataset, and the real datasets' download steps."""
