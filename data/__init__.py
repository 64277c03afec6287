"""Data: the 68-point scheme, RecordIO data sets, heatmap codec, iterator and converters."""
