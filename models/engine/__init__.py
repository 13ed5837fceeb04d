"""Training, pretrained-weight transfer, prediction and export, on top of Ultralytics' public API."""
