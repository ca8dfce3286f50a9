"""Evaluation: the ISIC challenge metrics, scoring a model or a folder of masks, and the report files."""
