"""Comparing attention layers: benchmarks (timing, layers, models, report), ablation, visualisation, summaries."""
