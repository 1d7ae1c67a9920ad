"""Evaluation metrics beyond top-k accuracy: AVA frame-mAP."""
