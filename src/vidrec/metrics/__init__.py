"""Metrics: the top-k a prediction reports, video classification accuracy and confusion, AVA frame-mAP."""
